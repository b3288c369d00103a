"""Model cards: what a buyer reads before paying, recorded on chain when a model is registered.

A card says what the model is for (description, task, tags), under which licence its use falls
(an SPDX id such as `Apache-2.0`, or a short text), and what it takes and gives: each input and
output tensor's name, element type and shape, read from the ONNX file at publish so nobody has
to type it. It is the model's `metadata` in the models contract: canonical JSON (sorted keys,
no spaces, UTF-8), at most `MAX_CARD_BYTES`, marked `{"card": 1, ...}` so other metadata stays
apart. The chain keeps it as bytes and enforces nothing in it; a reader shows it as the owners
wrote it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aichain_node.terms import TermsError

CARD_VERSION = 1
MAX_CARD_BYTES = 8192
MAX_TAGS = 16


@dataclass(frozen=True)
class Tensor:
    """One input or output: its name, element type (`float32`, …) and shape (a name or None for a free axis)."""

    name: str
    dtype: str
    shape: tuple[int | str | None, ...]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_json(cls, value: Any) -> Tensor:
        return cls(str(value["name"]), str(value["dtype"]), tuple(value["shape"]))

    def text(self) -> str:
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name} {self.dtype} [{dims}]"


@dataclass(frozen=True)
class ModelCard:
    description: str = ""
    task: str = ""  # e.g. image-classification, tabular-classification, text-generation
    tags: tuple[str, ...] = ()
    licence: str = ""  # an SPDX id (Apache-2.0, CC-BY-4.0) or a short text
    inputs: tuple[Tensor, ...] = ()
    outputs: tuple[Tensor, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "task": self.task,
            "tags": list(self.tags),
            "licence": self.licence,
            "inputs": [t.to_json() for t in self.inputs],
            "outputs": [t.to_json() for t in self.outputs],
        }

    def encode(self) -> bytes:
        """The bytes recorded on chain; TermsError if the card is too large or a field is malformed."""
        if len(self.tags) > MAX_TAGS:
            raise TermsError(f"a card has at most {MAX_TAGS} tags, this one {len(self.tags)}")
        for tag in self.tags:
            if not tag or len(tag) > 64 or any(c.isspace() or c == "," for c in tag):
                raise TermsError(f"tag {tag!r}: 1 to 64 characters, no spaces or commas")
        raw = json.dumps(
            {"card": CARD_VERSION, **self.to_json()}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
        if len(raw) > MAX_CARD_BYTES:
            raise TermsError(
                f"the model card takes {len(raw):,} bytes, more than {MAX_CARD_BYTES:,}: shorten the description "
                "(link to a longer text instead)"
            )
        return raw

    @classmethod
    def decode(cls, raw: bytes) -> ModelCard | None:
        """The card in a model's metadata, or None if the metadata is not a card (empty, or other bytes)."""
        if not raw.startswith(b'{"card":'):
            return None
        try:
            value = json.loads(raw)
            return cls(
                description=str(value.get("description", "")),
                task=str(value.get("task", "")),
                tags=tuple(str(t) for t in value.get("tags", [])),
                licence=str(value.get("licence", "")),
                inputs=tuple(Tensor.from_json(t) for t in value.get("inputs", [])),
                outputs=tuple(Tensor.from_json(t) for t in value.get("outputs", [])),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None  # a malformed card reads as none: the chain enforces nothing in it

    def matches(self, words: list[str]) -> bool:
        """Every word appears (case-insensitively) in the description, task, tags or licence."""
        text = " ".join([self.description, self.task, self.licence, *self.tags]).lower()
        return all(w.lower() in text for w in words)


def onnx_signature(path: Path) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
    """The inputs and outputs an ONNX model (a file, or a directory holding one) declares, read with onnxruntime."""
    import onnxruntime as ort

    from aichain_node.inference import model_file_in

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # read, not run
    session = ort.InferenceSession(str(model_file_in(path)), options, providers=["CPUExecutionProvider"])

    def tensors(args: list[Any]) -> tuple[Tensor, ...]:
        return tuple(Tensor(a.name, _dtype(a.type), tuple(a.shape)) for a in args)

    return tensors(session.get_inputs()), tensors(session.get_outputs())


def _dtype(onnx_type: str) -> str:
    """`tensor(float)` -> `float32`; other types (sequences, maps) as onnxruntime names them."""
    names = {"float": "float32", "double": "float64", "float16": "float16", "bool": "bool", "string": "string"}
    if onnx_type.startswith("tensor(") and onnx_type.endswith(")"):
        inner = onnx_type[7:-1]
        return names.get(inner, inner)
    return onnx_type


__all__ = ["MAX_CARD_BYTES", "ModelCard", "Tensor", "onnx_signature"]
