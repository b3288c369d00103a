# The part of sklearn.base (scikit-learn 1.3+) this repository uses; see typings/README.md.
from typing import Any

def is_classifier(estimator: Any) -> bool: ...
