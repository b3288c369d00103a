"""Running a verified ONNX model on numpy inputs, and the digests an inference receipt records.

A receipt names the model version and two SHA-256 digests, of the inputs and of the outputs.
They are taken over tensors, not files, so the same arrays give the same digest whether they
came from `.npy`, `.npz` or a notebook:

    digest = SHA-256 over, for each tensor in name order:
             msgpack [name, dtype (numpy's form, e.g. "<f4"), shape] || its bytes in C order

Anyone holding the model and the inputs can re-run a recorded inference and compare the
output digest (`tensor_digest(outputs) == receipt's output hash`).
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from core import codec
from core.errors import AichainError

Tensors = dict[str, np.ndarray]
DIGESTIBLE_KINDS = "biufc"  # bool, signed, unsigned, float, complex


class BadInput(AichainError):
    """The inputs do not fit the model (names, count, file format)."""


def tensor_digest(tensors: Mapping[str, np.ndarray]) -> bytes:
    """SHA-256 of named tensors in a form that depends only on their names, dtypes, shapes and values."""
    hasher = hashlib.sha256()
    for name in sorted(tensors):
        array = np.asarray(tensors[name])
        if array.dtype.kind not in DIGESTIBLE_KINDS:
            raise BadInput(f"tensor {name!r} is of dtype {array.dtype}; only bool and numeric tensors have a digest")
        hasher.update(codec.encode([name, array.dtype.str, list(array.shape)]))  # the shape as given, 0-d too
        if array.size:
            hasher.update(np.ascontiguousarray(array).reshape(-1).data.cast("B"))  # the buffer, not a copy
    return hasher.digest()


def load_inputs(path: Path) -> dict[str, np.ndarray] | np.ndarray:
    """The arrays of a `.npz` (by name) or the one array of a `.npy` (by content, whatever the suffix)."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                return {name: loaded[name] for name in loaded.files}
        if not isinstance(loaded, np.ndarray):
            raise ValueError("it holds no array")
        return loaded
    except FileNotFoundError:
        raise BadInput(f"no input file at {path}") from None
    except IsADirectoryError:
        raise BadInput(f"{path} is a directory: give a .npy or .npz file") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise BadInput(f"{path} is not a .npy or .npz array file numpy can read without pickles: {exc}") from None


def save_outputs(outputs: Tensors, path: Path) -> Path:
    """Write outputs: `.npz` keeps every output by name; `.npy` takes a model with one output. Without
    either suffix, `.npz` is added. Returns the path written."""
    if path.suffix == ".npy":
        if len(outputs) != 1:
            raise BadInput(f"the model has {len(outputs)} outputs ({', '.join(outputs)}); save them to a .npz")
        np.save(path, next(iter(outputs.values())), allow_pickle=False)
        return path
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    with zipfile.ZipFile(path, "w") as archive:  # what np.savez writes, without its keyword-name clashes
        for name, value in outputs.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)
    return path


# ONNX tensor element types as onnxruntime names them, and the numpy dtype each takes.
ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int8)": "int8",
    "tensor(int16)": "int16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(uint8)": "uint8",
    "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32",
    "tensor(uint64)": "uint64",
    "tensor(bool)": "bool",
}


def _describe_shape(shape: list[Any]) -> str:
    return "[" + ", ".join(d if isinstance(d, str) else "?" if d is None else str(d) for d in shape) + "]"


class Session:
    """An onnxruntime session over a model file that has been verified against the chain."""

    def __init__(self, model_file: Path, *, threads: int = 0) -> None:
        import onnxruntime as ort  # imported here: only running a model needs it

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3  # errors only: ORT's warnings are for its developers
        try:
            self._session = ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad models
            raise BadInput(f"onnxruntime could not load {model_file.name}: {exc}") from None
        self.input_names = [i.name for i in self._session.get_inputs()]
        # What each input takes: numpy dtype (None if not a plain tensor) and shape (None/str: free).
        self.input_specs = {i.name: (ORT_DTYPES.get(i.type), list(i.shape or [])) for i in self._session.get_inputs()}
        self.output_names = [o.name for o in self._session.get_outputs()]

    def feed(self, inputs: Mapping[str, np.ndarray] | np.ndarray) -> Tensors:
        """The inputs by the model's input names (one bare array for a model with one input)."""
        if isinstance(inputs, np.ndarray):
            if len(self.input_names) != 1:
                raise BadInput(
                    f"the model takes {len(self.input_names)} inputs ({', '.join(self.input_names)}): "
                    "give them by name, in a .npz"
                )
            feed = {self.input_names[0]: inputs}
        else:
            missing = [n for n in self.input_names if n not in inputs]
            extra = [n for n in inputs if n not in self.input_names]
            if missing or extra:
                raise BadInput(f"the model takes inputs {self.input_names}; missing {missing}, unknown {extra}")
            feed = dict(inputs)
        for name, value in feed.items():
            self._check(name, np.asarray(value))
        return feed

    def _check(self, name: str, value: np.ndarray) -> None:
        """BadInput, in one line, if `value` cannot be input `name` (dtype, rank, fixed dimensions)."""
        dtype, shape = self.input_specs[name]
        wants = f"input {name!r} takes {dtype or 'a tensor'} of shape {_describe_shape(shape)}"
        got = f"got {value.dtype} of shape {list(value.shape)}"
        if dtype is not None and value.dtype != np.dtype(dtype):
            raise BadInput(f"{wants}, {got}: convert it (e.g. x.astype(np.{dtype}))")
        if not shape:  # a scalar, or a shape the model leaves open
            return
        fixed_ok = len(shape) == value.ndim and all(
            not isinstance(d, int) or d == n for d, n in zip(shape, value.shape, strict=True)
        )
        if not fixed_ok:
            raise BadInput(f"{wants}, {got}")

    def run(self, feed: Tensors) -> Tensors:
        try:
            values: list[Any] = self._session.run(None, feed)
        except Exception as exc:
            raise BadInput(f"onnxruntime refused the inputs: {exc}") from None
        return {name: np.asarray(value) for name, value in zip(self.output_names, values, strict=True)}


def model_file_in(path: Path) -> Path:
    """The .onnx file to load: `path` itself, or the one .onnx file at the top of a directory artifact
    (its external-data files sit beside it, where onnxruntime looks for them)."""
    if path.is_file():
        return path
    found = sorted(path.glob("*.onnx")) or sorted(path.rglob("*.onnx"))
    if len(found) != 1:
        names = ", ".join(str(f.relative_to(path)) for f in found) or "none"
        raise BadInput(f"{path} should hold exactly one .onnx file to run, it holds: {names}")
    return found[0]


__all__ = ["BadInput", "Session", "load_inputs", "model_file_in", "save_outputs", "tensor_digest"]
