from __future__ import annotations

import re
from pathlib import Path

import core.errors as errors
from tests.harness import NodeProcess

DOCS = Path(__file__).resolve().parents[2] / "docs" / "rpc.md"


def test_every_rpc_method_and_error_code_is_documented(dev_node: NodeProcess) -> None:
    text = DOCS.read_text()
    documented = set(re.findall(r"^### `(\w+)\(", text, flags=re.M))
    served = {m["name"] for m in dev_node.rpc.call("rpc_methods")}
    assert served - documented == set(), "add these methods to docs/rpc.md"
    assert documented - served == set(), "docs/rpc.md lists methods the node does not serve"
    codes = {
        cls.rpc_code
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.AichainError) and cls.__module__ == errors.__name__
    }
    tx_codes = {c for c in codes if c >= -32016}
    missing = {c for c in tx_codes if f"| {c} |" not in text}
    assert missing == set(), f"docs/rpc.md lacks error codes {sorted(missing)}"
