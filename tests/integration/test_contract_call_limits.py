"""A free read-only call cannot freeze a node: views that loop forever answer with a clear gas or time
error within the budget, while another client's requests are answered promptly, the event loop never
lags 100 ms, and blocks keep coming; one call too many is refused at once with -32096."""

from __future__ import annotations

import re
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aichain_node.errors import ContractCallFailed
from core.transaction import TxKind
from tests.harness import NodeProcess, Rpc
from tests.integration.support import DEV_KEY, call_raw, transfer
from tests.integration.test_contracts_rpc import send
from vm.compiler import compile_contract
from vm.contract_tx import encode_deploy
from vm.contracts import contract_address

SPIN = """
@view
def spin() -> int:
    while True:
        pass
    return 0


@view
def seven() -> int:
    return 7
"""
BUDGET_S = 0.5  # [rpc] call_time_budget_s, the default
LOOPING = 8


def deploy_spin(node: NodeProcess) -> str:
    nonce = int(node.rpc.call("state_getAccount", "0x" + DEV_KEY.address.hex())["pending_nonce"])
    receipt = send(node, TxKind.DEPLOY, b"", encode_deploy(compile_contract(SPIN), []))
    assert receipt["status"] == "success", receipt
    return "0x" + contract_address(DEV_KEY.address, nonce).hex()


def timed_call(url: str, *params: Any) -> tuple[float, dict[str, Any]]:
    started = time.monotonic()
    response = call_raw(url, "contract_call", *params)
    return time.monotonic() - started, response


def lag_samples(node: NodeProcess) -> tuple[float, float]:
    """(samples of the event loop's lag, samples over 100 ms) from the node's /metrics."""
    with urllib.request.urlopen(node.url + "/metrics", timeout=10) as response:
        text = response.read().decode()

    def sample(pattern: str) -> float:
        found = re.search(pattern, text, re.M)
        assert found is not None, f"/metrics lacks {pattern}"
        return float(found.group(1))

    total = sample(r"^aichain_event_loop_lag_seconds_count (\S+)$")
    return total, total - sample(r'^aichain_event_loop_lag_seconds_bucket\{le="0.1"\} (\S+)$')


def test_looping_views_fail_within_their_budget_while_the_node_answers_and_makes_blocks(tmp_path: Path) -> None:
    with NodeProcess(tmp_path, block_time_ms=200) as node:  # the defaults: 2 run at once, the others wait
        spin = deploy_spin(node)
        head_before = node.rpc.call("chain_head")["height"]
        samples_before, slow_before = lag_samples(node)
        probes: list[float] = []
        done = threading.Event()

        def probe() -> None:  # another client, asking for the head and sending transfers all along
            client = Rpc(node.url, timeout=30)
            nonce = int(client.call("state_getAccount", "0x" + DEV_KEY.address.hex())["pending_nonce"])
            while not done.is_set():
                started = time.monotonic()
                client.call("chain_head")
                probes.append(time.monotonic() - started)
                client.send(transfer(DEV_KEY, b"\x0c" * 20, 1, nonce))
                nonce += 1
                time.sleep(0.02)

        answers: list[tuple[float, dict[str, Any]]] = []
        with ThreadPoolExecutor(LOOPING + 1) as pool:
            watcher = pool.submit(probe)
            for _ in range(2):  # two waves of looping views, about a second in all
                looping = [pool.submit(timed_call, node.url, spin, "spin") for _ in range(LOOPING)]
                answers += [f.result(timeout=60) for f in looping]
            storm_head = node.rpc.call("chain_head")["height"]
            done.set()
            watcher.result(timeout=30)

        for elapsed, response in answers:
            error = response.get("error")
            assert error is not None and error["code"] == -32094, response
            assert ("out of gas" in error["message"] and "call_gas_cap" in error["message"]) or (
                "time budget" in error["message"] and "call_time_budget_s" in error["message"]
            ), error
            assert elapsed < BUDGET_S + 1.5, f"a looping view answered after {elapsed:.2f} s"
        assert probes and max(probes) < 1.0, f"chain_head took {max(probes):.2f} s while views looped"
        samples_after, slow_after = lag_samples(node)
        # A loop held for the whole storm would take one late sample: there must be many, none late.
        assert samples_after - samples_before >= 10, "the loop lag monitor must have sampled during the storm"
        assert slow_after == slow_before, "the event loop lagged over 100 ms while views looped"
        assert storm_head >= head_before + 2, "blocks must keep coming while views loop"
        assert node.rpc.call("contract_call", spin, "seven")["result"] == 7


def test_one_call_over_the_per_client_bound_is_refused_at_once(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path, block_time_ms=200)
    node.env["AICHAIN_RPC_CALL_MAX_QUEUED_PER_CLIENT"] = "3"
    with node:
        spin = deploy_spin(node)
        with ThreadPoolExecutor(5) as pool:
            answers = list(pool.map(lambda _: timed_call(node.url, spin, "spin"), range(5)))
        refused = [(t, r) for t, r in answers if r.get("error", {}).get("code") == -32096]
        assert len(refused) >= 2, answers
        elapsed, response = refused[0]
        assert "call_max_queued_per_client" in response["error"]["message"] and elapsed < BUDGET_S, response
        try:
            node.rpc.call("contract_call", spin, "spin")
            raise AssertionError("a looping view must fail")
        except ContractCallFailed as exc:  # alone again: it runs, and runs out of gas
            assert exc.rpc_code == -32094 and "out of gas" in exc.message
