"""Inference: tensor digests, reading inputs and writing outputs, and running a real ONNX model.

The model is `node.bench.onnx_model.build_mlp` (MatMul, Add, Relu, MatMul, Add); its output is
checked against numpy on the weights read back from the model file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from aichain_node.inference import BadInput, Session, load_inputs, model_file_in, save_outputs, tensor_digest
from core import codec
from node.bench.onnx_model import build_mlp

INPUTS, HIDDEN, OUTPUTS = 8, 16, 4


@pytest.fixture(scope="module")
def mlp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_mlp(tmp_path_factory.mktemp("mlp") / "mlp.onnx", inputs=INPUTS, hidden=HIDDEN, outputs=OUTPUTS, seed=7)


@pytest.fixture(scope="module")
def session(mlp: Path) -> Session:
    return Session(mlp, threads=1)


def reference(model_file: Path, x: np.ndarray) -> np.ndarray:
    """relu(x @ w1 + b1) @ w2 + b2 with the weights stored in the model file."""
    weights = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(model_file)).graph.initializer}
    hidden = np.maximum(x @ weights["w1"] + weights["b1"], 0)
    return hidden @ weights["w2"] + weights["b2"]  # type: ignore[no-any-return]


def two_input_model(dest: Path) -> Path:
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["s"])],
        "add",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [2]) for name in ("a", "b")],
        [helper.make_tensor_value_info("s", TensorProto.FLOAT, [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save_model(model, str(dest))
    return dest


# --- tensor_digest --------------------------------------------------------------------------------


def test_tensor_digest_is_sha256_of_header_and_c_order_bytes_in_name_order() -> None:
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([True, False])
    hasher = hashlib.sha256()
    for name, array in (("a", a), ("b", b)):
        hasher.update(codec.encode([name, array.dtype.str, list(array.shape)]))
        hasher.update(array.tobytes(order="C"))
    assert tensor_digest({"b": b, "a": a}) == hasher.digest()


def test_tensor_digest_does_not_depend_on_dict_order() -> None:
    x, y = np.arange(4, dtype=np.int64), np.ones((2, 2), dtype=np.float32)
    assert tensor_digest({"x": x, "y": y}) == tensor_digest({"y": y, "x": x})


def test_tensor_digest_of_fortran_order_equals_c_order_with_equal_values() -> None:
    c_order = np.arange(12, dtype=np.float64).reshape(3, 4)
    fortran = np.asfortranarray(c_order)
    assert fortran.flags.f_contiguous and not fortran.flags.c_contiguous
    assert tensor_digest({"x": fortran}) == tensor_digest({"x": c_order})
    strided = np.arange(24, dtype=np.float64).reshape(3, 8)[:, ::2]  # a non-contiguous view
    assert tensor_digest({"x": strided}) == tensor_digest({"x": strided.copy()})


def test_tensor_digest_differs_with_dtype_shape_values_or_name() -> None:
    base = np.arange(6, dtype=np.float32).reshape(2, 3)
    digest = tensor_digest({"x": base})
    assert tensor_digest({"x": base.astype(np.float64)}) != digest
    assert tensor_digest({"x": base.view(np.int32)}) != digest  # same bytes, other dtype
    assert tensor_digest({"x": base.astype(">f4")}) != digest  # same values, other byte order
    assert tensor_digest({"x": base.reshape(3, 2)}) != digest  # same bytes, other shape
    assert tensor_digest({"x": base.reshape(6)}) != digest
    changed = base.copy()
    changed[1, 2] += 1
    assert tensor_digest({"x": changed}) != digest
    assert tensor_digest({"y": base}) != digest
    assert tensor_digest({"x": base, "z": np.zeros(1, np.float32)}) != digest


def test_tensor_digest_does_not_let_bytes_move_between_tensors() -> None:
    whole = np.arange(4, dtype=np.uint8)
    assert tensor_digest({"a": whole[:2], "b": whole[2:]}) != tensor_digest({"a": whole[:3], "b": whole[3:]})


def test_tensor_digest_refuses_object_arrays() -> None:
    with pytest.raises(BadInput, match="dtype object; only bool and numeric"):
        tensor_digest({"x": np.array([1, "two"], dtype=object)})


def test_tensor_digest_of_a_scalar_differs_from_a_one_element_vector() -> None:
    # The digest is documented to depend on the shape: () and (1,) are different shapes.
    assert tensor_digest({"x": np.array(5.0, dtype=np.float32)}) != tensor_digest({"x": np.array([5.0], np.float32)})


def test_tensor_digest_of_an_empty_tensor_depends_on_its_shape() -> None:
    # A batch of zero rows is a valid tensor (an output of shape (0, 4), say).
    assert tensor_digest({"x": np.zeros((0, 3), np.float32)}) != tensor_digest({"x": np.zeros((0, 4), np.float32)})


# --- load_inputs ----------------------------------------------------------------------------------


def test_load_inputs_reads_the_one_array_of_a_npy(tmp_path: Path) -> None:
    array = np.arange(10, dtype=np.float32).reshape(2, 5)
    np.save(tmp_path / "x.npy", array)
    loaded = load_inputs(tmp_path / "x.npy")
    assert isinstance(loaded, np.ndarray)
    assert loaded.dtype == array.dtype and np.array_equal(loaded, array)


def test_load_inputs_reads_a_npz_by_name(tmp_path: Path) -> None:
    a, b = np.arange(3, dtype=np.int32), np.eye(2, dtype=np.float64)
    np.savez(tmp_path / "in.npz", a=a, b=b)
    loaded = load_inputs(tmp_path / "in.npz")
    assert isinstance(loaded, dict)
    assert sorted(loaded) == ["a", "b"]
    assert np.array_equal(loaded["a"], a) and loaded["a"].dtype == np.int32
    assert np.array_equal(loaded["b"], b)


def test_load_inputs_of_a_missing_file_is_bad_input(tmp_path: Path) -> None:
    for name in ("absent.npy", "absent.npz"):
        with pytest.raises(BadInput, match="no input file"):
            load_inputs(tmp_path / name)


def test_load_inputs_refuses_pickled_object_arrays(tmp_path: Path) -> None:
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(BadInput, match="without pickles"):
        load_inputs(tmp_path / "obj.npy")
    np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(BadInput, match="without pickles"):
        load_inputs(tmp_path / "obj.npz")


@pytest.mark.parametrize("name", ["garbage.npy", "garbage.npz"])
def test_load_inputs_of_garbage_bytes_is_bad_input(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b"\x00this is not an array file\xff" * 4)
    with pytest.raises(BadInput, match=r"is not a \.npy or \.npz"):
        load_inputs(tmp_path / name)


def test_load_inputs_of_a_truncated_npy_is_bad_input(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.arange(100, dtype=np.float64))
    raw = (tmp_path / "x.npy").read_bytes()
    (tmp_path / "x.npy").write_bytes(raw[:-8])
    with pytest.raises(BadInput):
        load_inputs(tmp_path / "x.npy")


def test_load_inputs_of_a_corrupt_zip_is_bad_input(tmp_path: Path) -> None:
    # Starts like a zip (numpy then reads it as a .npz) but is not one.
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04" + b"not really a zip archive" * 4)
    with pytest.raises(BadInput):
        load_inputs(tmp_path / "broken.npz")


# --- save_outputs ---------------------------------------------------------------------------------


def test_save_outputs_writes_the_one_output_to_a_npy(tmp_path: Path) -> None:
    y = np.arange(8, dtype=np.float32).reshape(2, 4)
    path = save_outputs({"y": y}, tmp_path / "out.npy")
    assert path == tmp_path / "out.npy"
    loaded = np.load(path, allow_pickle=False)
    assert loaded.dtype == y.dtype and np.array_equal(loaded, y)


def test_save_outputs_refuses_two_outputs_in_a_npy(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"2 outputs \(a, b\); save them to a .npz"):
        save_outputs({"a": np.zeros(1), "b": np.ones(1)}, tmp_path / "out.npy")
    assert not (tmp_path / "out.npy").exists()


def test_save_outputs_npz_round_trips_through_load_inputs(tmp_path: Path) -> None:
    outputs = {"logits": np.linspace(0, 1, 6, dtype=np.float32).reshape(2, 3), "label": np.array([1, 0], np.int64)}
    path = save_outputs(outputs, tmp_path / "out.npz")
    assert path == tmp_path / "out.npz"
    loaded = load_inputs(path)
    assert isinstance(loaded, dict)
    assert sorted(loaded) == ["label", "logits"]
    assert tensor_digest(loaded) == tensor_digest(outputs)


def test_save_outputs_returns_the_path_it_wrote(tmp_path: Path) -> None:
    path = save_outputs({"y": np.arange(3)}, tmp_path / "outputs")
    assert path.is_file()


# --- Session --------------------------------------------------------------------------------------


def test_session_names_the_model_inputs_and_outputs(session: Session) -> None:
    assert session.input_names == ["x"]
    assert session.output_names == ["y"]


def test_feed_takes_a_bare_array_for_a_single_input_model(session: Session) -> None:
    x = np.ones((2, INPUTS), np.float32)
    fed = session.feed(x)
    assert list(fed) == ["x"] and fed["x"] is x


def test_feed_takes_inputs_by_name(session: Session) -> None:
    x = np.ones((1, INPUTS), np.float32)
    assert session.feed({"x": x}) == {"x": x}


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["z"], r"missing \['x'\], unknown \['z'\]"),
        ([], r"missing \['x'\], unknown \[\]"),
        (["x", "extra"], r"missing \[\], unknown \['extra'\]"),
    ],
)
def test_feed_with_wrong_names_is_bad_input(session: Session, names: list[str], message: str) -> None:
    with pytest.raises(BadInput, match=message):
        session.feed({name: np.ones((1, INPUTS), np.float32) for name in names})


def test_run_matches_numpy_on_the_model_weights(session: Session, mlp: Path) -> None:
    x = np.random.default_rng(1).standard_normal((5, INPUTS), dtype=np.float32)
    outputs = session.run(session.feed(x))
    assert list(outputs) == ["y"]
    assert outputs["y"].shape == (5, OUTPUTS) and outputs["y"].dtype == np.float32
    expected = reference(mlp, x)
    assert np.allclose(outputs["y"], expected, rtol=1e-5, atol=1e-5)
    assert not np.allclose(outputs["y"], reference(mlp, x + 1), atol=1e-3)  # the comparison can fail


def test_run_is_deterministic_so_its_digest_can_be_rechecked(session: Session) -> None:
    x = np.random.default_rng(2).standard_normal((3, INPUTS), dtype=np.float32)
    assert tensor_digest(session.run(session.feed(x))) == tensor_digest(session.run(session.feed(x.copy())))


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (
            np.ones((2, INPUTS + 1), np.float32),
            rf"input 'x' takes float32 of shape \[\w+, {INPUTS}\], got float32 of "
            rf"shape \[2, {INPUTS + 1}\]$",
        ),
        (np.ones((2, INPUTS), np.float64), r"got float64 of shape .*: convert it \(e.g. x.astype\(np.float32\)\)"),
        (np.ones(INPUTS, np.float32), rf"got float32 of shape \[{INPUTS}\]$"),
    ],
)
def test_feed_of_inputs_that_do_not_fit_says_what_the_model_takes(
    session: Session, x: np.ndarray, message: str
) -> None:
    with pytest.raises(BadInput, match=message) as refused:
        session.feed(x)
    assert "\n" not in str(refused.value)


def test_run_of_inputs_onnxruntime_refuses_is_bad_input(session: Session) -> None:
    x = np.ones((2, INPUTS), np.float64)  # past feed's checks, onnxruntime's own refusal is still BadInput
    with pytest.raises(BadInput, match="onnxruntime refused the inputs"):
        session.run({"x": x})


def test_feed_of_a_bare_array_to_a_two_input_model_is_bad_input(tmp_path: Path) -> None:
    model = Session(two_input_model(tmp_path / "add.onnx"))
    assert model.input_names == ["a", "b"]
    with pytest.raises(BadInput, match="takes 2 inputs"):
        model.feed(np.ones(2, np.float32))
    a, b = np.array([1, 2], np.float32), np.array([10, 20], np.float32)
    assert np.array_equal(model.run(model.feed({"b": b, "a": a}))["s"], a + b)


def test_session_on_a_file_that_is_not_a_model_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "junk.onnx").write_bytes(b"not a protobuf at all")
    with pytest.raises(BadInput, match=r"could not load junk\.onnx"):
        Session(tmp_path / "junk.onnx")


def test_session_runs_a_directory_model_with_external_weights(tmp_path: Path, mlp: Path) -> None:
    directory = build_mlp(
        tmp_path / "artifact", inputs=INPUTS, hidden=HIDDEN, outputs=OUTPUTS, seed=7, external_data=True
    )
    assert sorted(p.name for p in directory.iterdir()) == ["model.onnx", "weights.bin"]
    x = np.random.default_rng(3).standard_normal((2, INPUTS), dtype=np.float32)
    out = Session(model_file_in(directory)).run({"x": x})["y"]
    assert np.allclose(out, reference(mlp, x), rtol=1e-5, atol=1e-5)


# --- model_file_in --------------------------------------------------------------------------------


def test_model_file_in_a_file_is_the_file(tmp_path: Path) -> None:
    model = tmp_path / "weights.bin"  # any file is taken as it is
    model.write_bytes(b"x")
    assert model_file_in(model) == model


def test_model_file_in_a_directory_is_its_one_onnx_file(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"m")
    (tmp_path / "weights.bin").write_bytes(b"w")
    (tmp_path / "README.md").write_text("card")
    assert model_file_in(tmp_path) == tmp_path / "model.onnx"


def test_model_file_in_looks_in_subdirectories_only_without_a_top_level_onnx(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "nested.onnx").write_bytes(b"n")
    assert model_file_in(tmp_path) == tmp_path / "sub" / "nested.onnx"
    (tmp_path / "top.onnx").write_bytes(b"t")
    assert model_file_in(tmp_path) == tmp_path / "top.onnx"


def test_model_file_in_a_directory_with_two_onnx_files_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "a.onnx").write_bytes(b"a")
    (tmp_path / "b.onnx").write_bytes(b"b")
    with pytest.raises(BadInput, match=r"exactly one .onnx file to run, it holds: a.onnx, b.onnx"):
        model_file_in(tmp_path)


def test_model_file_in_a_directory_without_onnx_files_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"w")
    with pytest.raises(BadInput, match="it holds: none"):
        model_file_in(tmp_path)
