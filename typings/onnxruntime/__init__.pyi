# The part of onnxruntime (1.17+) this repository uses; see typings/README.md.
from collections.abc import Mapping, Sequence
from typing import Any

class GraphOptimizationLevel:
    ORT_DISABLE_ALL: GraphOptimizationLevel
    ORT_ENABLE_BASIC: GraphOptimizationLevel
    ORT_ENABLE_EXTENDED: GraphOptimizationLevel
    ORT_ENABLE_ALL: GraphOptimizationLevel

class SessionOptions:
    intra_op_num_threads: int
    log_severity_level: int
    graph_optimization_level: GraphOptimizationLevel
    def __init__(self) -> None: ...

class NodeArg:
    @property
    def name(self) -> str: ...
    @property
    def type(self) -> str: ...  # the element type, e.g. "tensor(float)"
    @property
    def shape(self) -> list[int | str | None]: ...  # a str or None: a dimension the model leaves free

class InferenceSession:
    def __init__(
        self,
        path_or_bytes: str | bytes,
        sess_options: SessionOptions | None = None,
        providers: Sequence[str] | None = None,
    ) -> None: ...
    def get_inputs(self) -> list[NodeArg]: ...
    def get_outputs(self) -> list[NodeArg]: ...
    def run(self, output_names: Sequence[str] | None, input_feed: Mapping[str, Any]) -> list[Any]: ...
