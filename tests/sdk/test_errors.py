"""The SDK's errors: every code a node documents comes back as its type, the same type whatever else the
process has imported, and named as the node names it."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import node
from aichain_node.errors import NodeError, error_from_rpc
from core.errors import AichainError, NonceTooLow, TransactionEvicted

ROOT = Path(__file__).resolve().parents[2]
# The node's own codes in docs/rpc.md (-32000 and below, above JSON-RPC's reserved -32600..-32768, which stay
# `NodeError`s: a malformed request is the client's bug, not a condition to catch).
DOCUMENTED = sorted(
    {
        int(c)
        for c in re.findall(r"^\| (-3[0-9]{4}) \|", (ROOT / "docs" / "rpc.md").read_text(), re.M)
        if int(c) > -32600
    }
)
GENERIC = -32000  # AichainError's own code, which several of the node's errors share: no type can claim it


def sdk_types() -> dict[int, str]:
    return {code: type(error_from_rpc(code, "m")).__name__ for code in DOCUMENTED}


def test_every_documented_code_has_its_type() -> None:
    assert len(DOCUMENTED) >= 25, DOCUMENTED
    for code in DOCUMENTED:
        error = error_from_rpc(code, "what the node said")
        if code == GENERIC:
            assert isinstance(error, NodeError) and error.rpc_code == GENERIC
            continue
        assert not isinstance(error, NodeError), (code, error)
        assert type(error).rpc_code == code and str(error) == "what the node said"


def test_a_code_gives_the_same_type_whatever_the_process_imported() -> None:
    # In the test process the whole server is imported, its own classes for these codes included.
    for module in pkgutil.walk_packages(node.__path__, "node."):
        importlib.import_module(module.name)
    here = sdk_types()
    alone = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json; from aichain_node.errors import error_from_rpc; "
            f"print(json.dumps({{c: type(error_from_rpc(c, 'm')).__name__ for c in {DOCUMENTED}}}))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert alone.returncode == 0, alone.stderr
    assert {int(c): name for c, name in json.loads(alone.stdout).items()} == here
    assert all(type(error_from_rpc(c, "m")).__module__.startswith(("core.", "aichain_node.")) for c in DOCUMENTED)


def test_the_sdk_names_each_error_as_the_node_does() -> None:
    for module in pkgutil.walk_packages(node.__path__, "node."):
        importlib.import_module(module.name)
    served: dict[int, str] = {}
    pending: list[type[AichainError]] = [AichainError]
    while pending:
        cls = pending.pop()
        pending += cls.__subclasses__()
        code = cls.__dict__.get("rpc_code")
        if cls.__module__.startswith("node.") and code in DOCUMENTED and code != GENERIC:
            served[code] = cls.__name__
    assert {-32094, -32095, -32096} <= set(served), served  # the node's contract-call errors
    for code, name in served.items():
        assert type(error_from_rpc(code, "m")).__name__ == name, code


def test_codes_are_unique_among_the_types_a_client_knows() -> None:
    seen: dict[int, str] = {}
    pending: list[type[AichainError]] = [AichainError]
    while pending:
        cls = pending.pop()
        pending += cls.__subclasses__()
        code = cls.__dict__.get("rpc_code")
        if code is None or not cls.__module__.startswith(("core.", "aichain_node.")):
            continue
        assert seen.setdefault(code, cls.__name__) == cls.__name__, (code, seen[code], cls.__name__)


@pytest.mark.parametrize("data", [{"reason": "expired", "evicted_at_ms": 5}, None])
def test_data_and_unknown_codes(data: dict[str, object] | None) -> None:
    evicted = error_from_rpc(TransactionEvicted.rpc_code, "dropped", data)
    assert isinstance(evicted, TransactionEvicted) and evicted.data == (data or {})
    unknown = error_from_rpc(-32555, "new in a later node", data)
    assert isinstance(unknown, NodeError) and unknown.rpc_code == -32555 and unknown.data == data
    assert str(unknown) == "new in a later node (code -32555)"
    assert isinstance(error_from_rpc(NonceTooLow.rpc_code, "nonce 3 < 4"), NonceTooLow)
