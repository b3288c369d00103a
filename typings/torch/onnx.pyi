# The part of torch.onnx this repository uses; see typings/README.md.
from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor
from torch.nn import Module

def export(
    model: Module,
    args: tuple[Tensor, ...],
    f: str,
    *,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    dynamic_axes: Mapping[str, Mapping[int, str]] | None = None,
    opset_version: int | None = None,
    **kwargs: Any,
) -> Any: ...
