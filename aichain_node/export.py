"""Export trained models to ONNX, the format the chain's models run in (`aichain_node.inference.Session`).

Optional helpers: each imports its library only when called, and raises `ExportUnavailable`
naming the extra to install when the library is missing:

    pip install 'aichain-node[sklearn]'   # scikit-learn and skl2onnx, for sklearn_to_onnx
    pip install 'aichain-node[torch]'     # PyTorch, for torch_to_onnx

Train a scikit-learn model, export it and publish it:

    from pathlib import Path

    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from aichain_node import Client
    from aichain_node.export import sklearn_to_onnx

    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(X, y)
    path = sklearn_to_onnx(model, X, Path("iris.onnx"))  # or the feature count: sklearn_to_onnx(model, 4, ...)
    with Client(url, key) as node:
        published = node.models.publish(path, "iris-classifier")
        print(published.model, published.version, published.artifact)

The exported model takes one float32 input, "x", of shape [batch, n_features]. A regressor
outputs "variable" ([batch, 1] or [batch, n_targets]); a classifier outputs "label" ([batch])
and "probabilities" ([batch, n_classes]) as plain tensors (no ZipMap of per-row dicts), so
`Session.run` gives numpy arrays for both.
"""

from __future__ import annotations

import inspect
import itertools
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import AichainError

if TYPE_CHECKING:
    import torch

SKLEARN_HINT = "pip install 'aichain-node[sklearn]'"
TORCH_HINT = "pip install 'aichain-node[torch]'"

# A protobuf message (an .onnx file without external data) cannot exceed 2 GiB; weights near that
# size go to external data files, which need a directory artifact (see torch_to_onnx).
_SINGLE_FILE_LIMIT = 2**31 - 2**26  # 2 GiB less 64 MiB for the graph itself
_DIRECTORY_MODEL_FILE = "model.onnx"


class ExportUnavailable(AichainError):
    """The library an export helper needs is not installed (the message names the extra to install)."""


def sklearn_to_onnx(model: Any, sample: np.ndarray | int, dest: Path, *, target_opset: int | None = None) -> Path:
    """Convert a fitted scikit-learn model (or pipeline) to ONNX with skl2onnx, write it to `dest`, return `dest`.

    `sample` is example input (an array of shape [batch, n_features] or one row) or the number of
    features. The ONNX input is float32 "x" of shape [None, n_features]. Classifiers export their
    probabilities as a plain tensor (option zipmap=False), not as a sequence of dicts.
    `target_opset` defaults to the newest opset skl2onnx supports with the installed onnx."""
    try:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType
        from sklearn.base import is_classifier
    except ImportError as exc:
        missing = _missing(exc, "skl2onnx")
        raise ExportUnavailable(
            f"exporting scikit-learn models needs scikit-learn and skl2onnx ({missing} cannot "
            f"be imported): {SKLEARN_HINT}"
        ) from exc
    n_features = _feature_count(sample)
    expected = getattr(model, "n_features_in_", None)
    if isinstance(expected, int) and expected != n_features:
        raise ValueError(f"the model was fitted on {expected} features, the sample has {n_features}")
    dest = Path(dest)
    if dest.is_dir():
        raise ValueError(f"{dest} is a directory: give the path of the .onnx file to write")
    # Keyed by id(model): for a Pipeline, skl2onnx hands zipmap on to its final classifier.
    options = {id(model): {"zipmap": False}} if is_classifier(model) else None
    onnx_model = convert_sklearn(
        model, initial_types=[("x", FloatTensorType([None, n_features]))], target_opset=target_opset, options=options
    )
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(onnx_model.SerializeToString())
    return dest


def torch_to_onnx(
    module: torch.nn.Module,
    sample_input: torch.Tensor,
    dest: Path,
    *,
    input_name: str = "x",
    output_name: str = "y",
    dynamic_batch: bool = True,
    opset: int = 17,
) -> Path:
    """Export a PyTorch module with `torch.onnx.export` (traced on `sample_input`) to `dest`; return `dest`.

    The graph has one input, `input_name`, and its (first) output is `output_name`; with
    `dynamic_batch`, axis 0 of both is a free "batch" dimension, otherwise the shapes are fixed
    to those of `sample_input`.

    `dest` is a file (e.g. model.onnx) or a directory: a directory when it already is one or its
    name has no suffix. A file holds the whole model; weights close to 2 GB or more do not fit in
    one ONNX file, so such a model needs a directory `dest` (it must be empty or not yet exist):
    the graph goes to `dest/model.onnx` and, for a model over 2 GB, the weights to external-data
    files beside it. Publish the directory itself (`models.publish(dest, name)`); `Session` runs
    it through `aichain_node.inference.model_file_in(dest)`.

    Uses the TorchScript-based exporter (`dynamo=False` where torch has that switch): it works
    on every torch >= 2.1 without extra packages (the dynamo exporter also needs onnxscript)."""
    try:
        import torch
        import torch.onnx
    except ImportError as exc:
        raise ExportUnavailable(
            f"exporting PyTorch models needs torch ({_missing(exc, 'torch')} cannot be imported): {TORCH_HINT}"
        ) from exc
    dest = Path(dest)
    weights = sum(t.numel() * t.element_size() for t in itertools.chain(module.parameters(), module.buffers()))
    if dest.is_dir() or not dest.suffix:
        if dest.exists() and any(dest.iterdir()):
            raise ValueError(f"{dest} is not empty: export a directory model into an empty or new directory")
        dest.mkdir(parents=True, exist_ok=True)
        target = dest / _DIRECTORY_MODEL_FILE
    else:
        if weights >= _SINGLE_FILE_LIMIT:
            raise ValueError(
                f"the module's weights take {weights / 2**30:.2f} GiB, too much for one ONNX file: "
                "give a directory as dest to export them as external data"
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        target = dest
    dynamic_axes = {input_name: {0: "batch"}, output_name: {0: "batch"}} if dynamic_batch else None
    choice: dict[str, Any] = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:  # torch >= 2.5; dynamo is the default from 2.9
        choice["dynamo"] = False
    with warnings.catch_warnings():
        # The TorchScript exporter is chosen above on purpose; its deprecation notice is not for the caller.
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export", category=DeprecationWarning)
        torch.onnx.export(
            module,
            (sample_input,),
            str(target),
            input_names=[input_name],
            output_names=[output_name],
            dynamic_axes=dynamic_axes,
            opset_version=opset,
            **choice,
        )
    return dest


def _missing(exc: ImportError, default: str) -> str:
    """The top-level name of the module that could not be imported."""
    return (exc.name or default).partition(".")[0]


def _feature_count(sample: np.ndarray | int) -> int:
    if isinstance(sample, bool):
        raise TypeError("sample is an array of example inputs or the number of features, not a bool")
    if isinstance(sample, int | np.integer):
        count = int(sample)
    else:
        array = np.asarray(sample)
        if array.ndim not in (1, 2):
            raise ValueError(f"sample should have shape [batch, n_features] or [n_features], not {list(array.shape)}")
        count = array.shape[-1]
    if count < 1:
        raise ValueError(f"a model needs at least one feature, the sample gives {count}")
    return count


__all__ = ["SKLEARN_HINT", "TORCH_HINT", "ExportUnavailable", "sklearn_to_onnx", "torch_to_onnx"]
