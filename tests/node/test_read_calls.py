"""Read-only calls: bounded in time without changing their gas, bounded in number per client and in
all (a slot is freed when its thread is done), reading one consistent state while blocks commit,
and arguments that cannot be contract values refused as invalid params."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from core.contract_json import value_from_json
from node.rpc.contracts import ResultTooLarge, result_json
from node.rpc.read_calls import CallsBusy, ReadOnlyCalls
from tests.node.test_chain import USERS, open_chain, produce, transfer
from tests.vm.test_contract_vm import CONTRACT, DEPLOYER, deploy
from vm.account import Account, account_key
from vm.contracts import CallContext, run_call
from vm.faults import Fault
from vm.interpreter import Deadline, OutOfGas, VMError

SPIN = "@view\ndef spin() -> int:\n    while True:\n        pass\n    return 0\n"
SUM = "@view\ndef total(n: int) -> int:\n    s = 0\n    for i in range(n):\n        s += i\n    return s\n"


def test_a_looping_call_with_a_deadline_stops_within_its_budget() -> None:
    view = deploy(SPIN)
    started = time.monotonic()
    with pytest.raises(VMError) as failure:
        ctx = CallContext(DEPLOYER, 5, 0, read_only=True, deadline=Deadline(0.2))
        run_call(view, ctx, DEPLOYER, CONTRACT, "spin", [], 0, 10**15)
    assert failure.value.fault is Fault.TIME_BUDGET and str(failure.value) == (
        "the read-only call ran past its time budget of 200 ms"
    )
    assert time.monotonic() - started < 1.0


def test_a_deadline_changes_no_gas_and_no_result() -> None:
    view = deploy(SUM)
    plain = run_call(view, CallContext(DEPLOYER, 5, 0), DEPLOYER, CONTRACT, "total", [30_000], 0, 10**10)
    timed = run_call(
        view, CallContext(DEPLOYER, 5, 0, deadline=Deadline(60)), DEPLOYER, CONTRACT, "total", [30_000], 0, 10**10
    )
    assert plain[:2] == timed[:2] and plain[1] > 3_000_000  # it crossed several gas slices
    with pytest.raises(OutOfGas) as short:
        run_call(
            view,
            CallContext(DEPLOYER, 5, 0, deadline=Deadline(60)),
            DEPLOYER,
            CONTRACT,
            "total",
            [30_000],
            0,
            plain[1] - 1,
        )
    assert short.value.gas_used == plain[1] - 1  # type: ignore[attr-defined]


async def test_a_client_runs_two_at_once_the_rest_wait_their_turn_and_bounds_refuse_at_once() -> None:
    calls = ReadOnlyCalls(threads=4, per_client=2, queued_per_client=3, max_in_flight=4)
    release = threading.Event()
    running: list[str] = []

    def job(name: str) -> str:
        running.append(name)
        release.wait(10)
        return name

    a = [asyncio.ensure_future(calls.run("a", lambda n=n: job(n))) for n in ("a1", "a2", "a3")]
    await asyncio.sleep(0.1)
    assert sorted(running) == ["a1", "a2"], "a client runs two at once; its third waits its turn"
    with pytest.raises(CallsBusy, match="call_max_queued_per_client"):
        await calls.run("a", lambda: job("a4"))
    b = asyncio.ensure_future(calls.run("b", lambda: job("b1")))
    await asyncio.sleep(0.1)
    assert "b1" in running, "another client does not wait behind the first one's queue"
    with pytest.raises(CallsBusy, match="call_max_in_flight"):
        await calls.run("c", lambda: job("c1"))
    a[0].cancel()  # its client went away: the thread still runs, so its place stays taken
    await asyncio.sleep(0.05)
    with pytest.raises(CallsBusy):
        await calls.run("c", lambda: job("c1"))
    release.set()
    assert [await f for f in a[1:]] == ["a2", "a3"] and await b == "b1"
    for _ in range(100):
        if calls.in_flight == 0:
            break
        await asyncio.sleep(0.01)
    assert calls.in_flight == 0 and await calls.run("c", lambda: "c2") == "c2"
    assert calls.outcomes["busy"] == 3
    await calls.close()
    with pytest.raises(CallsBusy, match="stopping"):
        await calls.run("a", lambda: "a5")


def test_a_state_snapshot_keeps_its_head_while_a_block_commits(tmp_path: Path) -> None:
    with open_chain(tmp_path / "chain") as chain:
        head, state = chain.state_snapshot()
        before = Account.decode(state.get(account_key(USERS[1].address)))  # type: ignore[arg-type]
        produce(chain, [transfer(USERS[0], 0, USERS[1], 7)])
        assert chain.head.height == head.height + 1
        still = Account.decode(state.get(account_key(USERS[1].address)))  # type: ignore[arg-type]
        assert still.balance == before.balance and chain.account(USERS[1].address).balance == before.balance + 7
        state.close()


def test_arguments_that_are_no_contract_values_are_refused() -> None:
    nested: list[object] = []
    for _ in range(500):
        nested = [nested]
    with pytest.raises(ValueError, match="nest at most"):
        value_from_json(nested)
    with pytest.raises(ValueError, match="lone surrogate"):
        value_from_json("\ud800")
    assert value_from_json(["é", {"str": "0x1"}, "0x01"]) == ["é", "0x1", b"\x01"]


def test_a_result_too_large_or_too_deep_to_send_is_a_clear_failure() -> None:
    big = [b"x" * 65536] * 64
    with pytest.raises(ResultTooLarge, match="over 4,194,304 bytes"):
        result_json(big)
    cyclic: list[object] = []
    cyclic.append(cyclic)
    with pytest.raises(ResultTooLarge, match="nests more than"):
        result_json(cyclic)
