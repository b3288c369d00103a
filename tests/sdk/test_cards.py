"""Model cards: the bytes recorded on chain, what a reader makes of other metadata, and the ONNX signature."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aichain_node.cards import MAX_CARD_BYTES, ModelCard, Tensor, onnx_signature
from aichain_node.inference import BadInput
from aichain_node.terms import TermsError
from node.bench.onnx_model import build_mlp

CARD = ModelCard(
    description="Iris species from four measurements.\nTrained on the UCI data.",
    task="tabular-classification",
    tags=("iris", "sklearn"),
    licence="CC-BY-4.0",
    inputs=(Tensor("x", "float32", (None, 4)),),
    outputs=(Tensor("label", "int64", ("N",)),),
)


def test_a_card_is_canonical_json_and_reads_back_the_same() -> None:
    raw = CARD.encode()
    canonical = {"card": 1, **CARD.to_json()}
    assert raw == json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert raw.startswith(b'{"card":1,')
    assert json.loads(raw)["tags"] == ["iris", "sklearn"]
    assert ModelCard.decode(raw) == CARD
    assert ModelCard(tags=("b", "a"), task="t").encode() == ModelCard(task="t", tags=("b", "a")).encode()


def test_metadata_that_is_not_a_card_reads_as_none() -> None:
    assert ModelCard.decode(b"") is None
    assert ModelCard.decode(bytes(32)) is None  # an old-style metadata id
    assert ModelCard.decode(b'{"card":1,"tags":[1,') is None  # cut off
    assert ModelCard.decode(b'{"card":1,"inputs":[{"name":"x"}]}') is None  # a tensor without its type


def test_a_card_that_is_too_large_or_badly_tagged_is_refused_with_what_to_do() -> None:
    with pytest.raises(TermsError, match="shorten the description"):
        ModelCard(description="x" * MAX_CARD_BYTES).encode()
    with pytest.raises(TermsError, match="no spaces or commas"):
        ModelCard(tags=("two words",)).encode()
    with pytest.raises(TermsError, match="at most 16 tags"):
        ModelCard(tags=tuple(f"t{i}" for i in range(17))).encode()


def test_words_match_the_description_task_tags_and_licence_in_any_case() -> None:
    assert CARD.matches(["IRIS", "uci"]) and CARD.matches(["tabular"]) and CARD.matches(["cc-by"])
    assert not CARD.matches(["iris", "resnet"])


def test_the_signature_is_read_from_the_onnx_file_and_its_directory_form(tmp_path: Path) -> None:
    inputs, outputs = onnx_signature(build_mlp(tmp_path / "m.onnx", inputs=5, outputs=3))
    assert [t.name for t in inputs] == ["x"] and inputs[0].dtype == "float32" and inputs[0].shape[-1] == 5
    assert [t.name for t in outputs] == ["y"] and outputs[0].shape[-1] == 3
    assert onnx_signature(build_mlp(tmp_path / "d", inputs=5, outputs=3, external_data=True)) == (inputs, outputs)
    with pytest.raises(BadInput, match=r"exactly one \.onnx file"):
        onnx_signature(tmp_path / "nothing-here")
