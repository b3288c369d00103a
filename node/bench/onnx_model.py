"""Small real ONNX models, built with the `onnx` helper API, for tests, docs and benchmarks.

`build_mlp` writes a two-layer perceptron (MatMul, Add, Relu, MatMul, Add) with weights drawn
from a seeded generator, so two calls with the same arguments give the same bytes. With
`external_data`, the weights go to a file beside the graph (the multi-file form onnxruntime
loads from a directory), which is how models past ONNX's 2 GB protobuf limit are shipped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def build_mlp(
    dest: Path, *, inputs: int = 8, hidden: int = 16, outputs: int = 4, seed: int = 0, external_data: bool = False
) -> Path:
    """Write the model to `dest` (a `.onnx` file, or a directory holding `model.onnx` + `weights.bin`)."""
    import onnx  # the test and bench extras install it; the node never needs it
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((inputs, hidden), dtype=np.float32)
    b1 = rng.standard_normal(hidden, dtype=np.float32)
    w2 = rng.standard_normal((hidden, outputs), dtype=np.float32)
    b2 = rng.standard_normal(outputs, dtype=np.float32)
    initializers = [numpy_helper.from_array(a, name) for a, name in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h2"]),
        helper.make_node("MatMul", ["h2", "w2"], ["y0"]),
        helper.make_node("Add", ["y0", "b2"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", inputs])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", outputs])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="aichain-tests")
    model.ir_version = 8  # what every onnxruntime since 1.14 reads
    onnx.checker.check_model(model)
    if external_data:
        dest.mkdir(parents=True, exist_ok=True)
        onnx.save_model(
            model,
            str(dest / "model.onnx"),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location="weights.bin",
            size_threshold=0,
        )
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(dest))
    return dest


def hidden_for_size(size_bytes: int, inputs: int = 64, outputs: int = 16) -> int:
    """The hidden width that makes `build_mlp`'s weights about `size_bytes` (float32)."""
    return max(1, size_bytes // (4 * (inputs + outputs + 1)))


__all__ = ["build_mlp", "hidden_for_size"]
