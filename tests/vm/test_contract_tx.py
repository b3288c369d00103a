"""Deploy and call transactions through the state transition: receipts, fees, reverts, supply."""

from __future__ import annotations

from core.contract_values import encode_call
from core.receipt import STATUS_FAILED, STATUS_SUCCESS
from core.transaction import TxKind
from tests.vm.test_contract_vm import TOKEN
from tests.vm.test_execution import ALICE, BOB, DictState, ctx, tx
from vm.account import Account
from vm.compiler import compile_contract
from vm.contract_tx import encode_deploy
from vm.contracts import contract_address
from vm.execution import apply_transaction
from vm.gas import intrinsic_gas
from vm.state import StateView

GAS = 5_000_000


def total(view: StateView, addresses: list[bytes]) -> int:
    return sum(view.account(a).balance for a in addresses)


def test_deploy_then_call_then_a_failing_call_charges_gas_and_reverts() -> None:
    view = StateView(DictState({ALICE.address: Account(10**12)}))
    deploy = tx(
        ALICE,
        to=b"",
        value=7,
        gas_limit=GAS,
        data=encode_deploy(compile_contract(TOKEN), [1000]),
        kind=int(TxKind.DEPLOY),
    )
    receipt = apply_transaction(view, deploy, ctx())
    assert receipt.status == STATUS_SUCCESS, receipt.error
    address = contract_address(ALICE.address, 0)
    assert receipt.events[0].name == "Deployed" and dict(receipt.events[0].fields)["address"] == address
    assert intrinsic_gas(deploy.data) < receipt.gas_used < GAS
    assert view.account(address).balance == 7 and view.account(address).code_hash
    spent = receipt.gas_used * deploy.gas_price
    assert view.account(ALICE.address).balance == 10**12 - 7 - spent

    send = tx(
        ALICE,
        to=address,
        value=0,
        nonce=1,
        gas_limit=GAS,
        data=encode_call("send", [BOB.address, 40]),
        kind=int(TxKind.CALL),
    )
    receipt = apply_transaction(view, send, ctx())
    assert receipt.status == STATUS_SUCCESS, receipt.error
    assert [e.name for e in receipt.events] == ["Sent"]

    before = view.account(ALICE.address).balance
    too_much = tx(
        ALICE,
        to=address,
        value=5,
        nonce=2,
        gas_limit=GAS,
        data=encode_call("send", [BOB.address, 10**6]),
        kind=int(TxKind.CALL),
    )
    receipt = apply_transaction(view, too_much, ctx())
    assert receipt.status == STATUS_FAILED and "insufficient balance" in receipt.error
    assert receipt.events == ()
    assert intrinsic_gas(too_much.data) < receipt.gas_used < GAS
    # the value came back, the gas did not, the nonce moved on
    assert view.account(ALICE.address).balance == before - receipt.gas_used * too_much.gas_price
    assert view.account(ALICE.address).nonce == 3
    assert view.account(address).balance == 7


def test_malformed_data_and_missing_contracts_fail_in_the_receipt() -> None:
    view = StateView(DictState({ALICE.address: Account(10**12)}))
    cases = [
        tx(ALICE, to=b"", gas_limit=GAS, data=b"\x93\x01\x02\x03", kind=int(TxKind.DEPLOY)),
        tx(ALICE, to=b"\x05" * 20, nonce=1, gas_limit=GAS, data=encode_call("f", []), kind=int(TxKind.CALL)),
        tx(ALICE, to=b"\x05" * 20, nonce=2, gas_limit=GAS, data=b"\xc1", kind=int(TxKind.CALL)),
    ]
    errors = []
    for case in cases:
        receipt = apply_transaction(view, case, ctx())
        assert receipt.status == STATUS_FAILED
        errors.append(receipt.error)
    assert "deploy data" in errors[0] and "no contract" in errors[1] and "malformed" in errors[2]
    assert view.account(ALICE.address).nonce == 3
