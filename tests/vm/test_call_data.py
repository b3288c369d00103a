"""A call's data is decoded once per distinct data: what a contract receives is still its own, and data
that does not decode is refused every time, in the same words."""

from __future__ import annotations

import pytest

from core import codec
from core.contract_values import encode_call, to_wire
from vm import contract_tx
from vm.contract_tx import _call_data
from vm.faults import Fault, VMError


def test_the_same_data_gives_the_same_call_each_time_and_each_a_copy_of_its_lists() -> None:
    data = encode_call("buy", ["tuned", 1, [[b"\x01" * 20, 5], []], None, True, 1 << 80])
    for _ in range(3):  # decoded, then remembered
        call = _call_data(data)
        assert data in contract_tx._CALLS
        assert call == ("buy", ["tuned", 1, [[b"\x01" * 20, 5], []], None, True, 1 << 80])
        call[1][2][0].append("changed")
        call[1][2].append("changed")
        call[1].append("changed")


@pytest.mark.parametrize(
    ("data", "fault"),
    [
        (codec.encode(["buy"]), Fault.MALFORMED_CALL),
        (codec.encode([b"buy", []]), Fault.MALFORMED_CALL),
        (b"\xc1", Fault.MALFORMED_CALL),
        (codec.encode(["buy", [[99, 1]]]), Fault.MALFORMED_ARGUMENTS),
        (codec.encode(["buy", [to_wire(1), [0]]]), Fault.MALFORMED_ARGUMENTS),
    ],
)
def test_data_that_does_not_decode_is_refused_every_time(data: bytes, fault: Fault) -> None:
    for _ in range(2):
        with pytest.raises(VMError) as refused:
            _call_data(data)
        assert refused.value.fault == fault
    assert data not in contract_tx._CALLS


def test_long_data_is_decoded_each_time() -> None:
    data = encode_call("f", [b"\x00" * contract_tx.CALL_CACHE_MAX_BYTES])
    assert _call_data(data) == ("f", [b"\x00" * contract_tx.CALL_CACHE_MAX_BYTES])
    assert data not in contract_tx._CALLS


def test_a_contract_that_changes_its_list_argument_gets_it_whole_on_the_next_call() -> None:
    from core.receipt import STATUS_SUCCESS
    from core.transaction import TxKind
    from tests.vm.test_execution import ALICE, DictState, ctx, tx
    from vm.account import Account
    from vm.compiler import compile_contract
    from vm.contract_tx import contract_transaction, encode_deploy
    from vm.contracts import contract_address
    from vm.execution import apply_transaction
    from vm.state import StateView

    source = (
        "@public\ndef f(xs: list) -> int:\n    xs[0].append(1)\n    xs.append(2)\n    return len(xs) + len(xs[0])\n"
    )
    view = StateView(DictState({ALICE.address: Account(10**15)}))
    deploy = tx(
        ALICE, to=b"", gas_limit=5_000_000, data=encode_deploy(compile_contract(source), []), kind=int(TxKind.DEPLOY)
    )
    assert apply_transaction(view, deploy, ctx()).status == STATUS_SUCCESS
    address = contract_address(ALICE.address, 0)
    data = encode_call("f", [[[7]]])
    for nonce in (1, 2, 3):
        call = tx(ALICE, to=address, nonce=nonce, gas_limit=5_000_000, data=data, kind=int(TxKind.CALL))
        outcome = contract_transaction(view, call, 1, 1_000, 1_000_000)
        assert (outcome.status, outcome.result) == (STATUS_SUCCESS, 4)
