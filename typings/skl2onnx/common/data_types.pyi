# The part of skl2onnx.common.data_types this repository uses; see typings/README.md.
from collections.abc import Sequence

class FloatTensorType:
    def __init__(self, shape: Sequence[int | None] | None = None) -> None: ...
