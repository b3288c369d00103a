"""The `world` fixture: system contracts with models "base" (one version) and "tuned" (two, the second
descending from base 1 and tuned 1), owned by keys 0-2 (tuned, 50/30/20) and 3 (base); keys 4 and 5 are free."""

from __future__ import annotations

import pytest

from core.keys import PrivateKey
from tests.vm.system_chain import ART, Chain
from vm.system import MODELS


@pytest.fixture
def world() -> tuple[Chain, list[PrivateKey]]:
    keys = [PrivateKey.from_seed(bytes([i]) * 32) for i in range(1, 7)]
    a, b, c, up = (k.address for k in keys[:4])
    chain = Chain(*(k.address for k in keys))
    chain.call(MODELS, up, "register_model", "base", ART, "onnx", b"", [[up, 10_000]])
    chain.call(MODELS, a, "register_model", "tuned", ART, "onnx", b"", [[a, 5_000], [b, 3_000], [c, 2_000]])
    chain.call(MODELS, a, "publish_version", "tuned", b"\x12" * 32, [["base", 1], ["tuned", 1]], [])
    return chain, keys
