# The part of skl2onnx (1.16+) this repository uses; see typings/README.md.
from collections.abc import Sequence
from typing import Any

from skl2onnx.common.data_types import FloatTensorType

class _ModelProto:  # onnx.ModelProto, as far as it is used here
    def SerializeToString(self) -> bytes: ...

def convert_sklearn(
    model: Any,
    *,
    initial_types: Sequence[tuple[str, FloatTensorType]] | None = None,
    target_opset: int | None = None,
    options: dict[int, dict[str, Any]] | None = None,
) -> _ModelProto: ...
