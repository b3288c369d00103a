"""The example in docs/contracts.md compiles and does what the text says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.vm.test_contract_vm import ALICE, CONTRACT, DEPLOYER, Empty
from vm.compiler import compile_contract
from vm.contracts import CallContext, install, run_call
from vm.interpreter import Revert
from vm.state import StateView

DOC = Path(__file__).resolve().parents[2] / "docs" / "contracts.md"


def example() -> str:
    match = re.search(r"## A full example\n\n```python\n(.*?)```", DOC.read_text(), re.S)
    assert match is not None
    return match.group(1)


def test_the_documented_contract_runs() -> None:
    view = StateView(Empty())
    install(view, CONTRACT, compile_contract(example()))
    for who in (DEPLOYER, ALICE):
        view.account(who).balance = 10_000
        view.touch(who)
    ctx = CallContext(DEPLOYER, 1, 0)

    def call(who: bytes, fn: str, *args: object, value: int = 0) -> object:
        return run_call(view, ctx, who, CONTRACT, fn, list(args), value, 10**6, internal=fn == "constructor")[0]

    call(DEPLOYER, "constructor")
    assert call(ALICE, "add", "hello", value=1_000) == 1
    with pytest.raises(Revert, match="send at least FEE"):
        call(ALICE, "add", "cheap", value=10)
    with pytest.raises(Revert, match="only the note's owner"):
        call(DEPLOYER, "hand_over", 1, DEPLOYER)
    call(ALICE, "hand_over", 1, DEPLOYER)
    assert call(ALICE, "by_author", DEPLOYER) == ["hello"]
    assert call(DEPLOYER, "withdraw") == 1_000
    assert view.account(DEPLOYER).balance == 11_000
    assert [e[1] for e in ctx.events] == ["Added", "HandedOver"]
