"""The README flow through the `aichain-node` CLI against a running dev node, and its errors.

Amounts: 1 AIC = 10**9 units; a transfer uses 21000 gas at the minimum price of 1 unit, so the
sender pays amount + 21000 units and the validator (the only proposer) earns the 21000.
"""

from __future__ import annotations

import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.harness import CLI, NodeProcess, free_port
from tests.integration.support import DEV_ADDRESS

UNIT = 10**9
FEE = 21_000 * 1
NODE_COMMANDS = [  # commands that talk to a node: each takes --rpc URL and --json
    ("status",),
    ("account", "balance"),
    ("account", "show"),
    ("tx", "transfer"),
    ("tx", "get"),
    ("tx", "receipt"),
]


def cli_json(node: NodeProcess, *args: str) -> Any:
    """Run with an explicit --rpc (the harness also sets AICHAIN_RPC; the flag must work on its own)."""
    return node.cli_json(*args, "--rpc", node.url)


def balance(node: NodeProcess, who: str) -> int:
    info = cli_json(node, "account", "balance", who)
    assert info["balance"] == str(int(info["balance"]))
    return int(info["balance"])


def assert_one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> str:
    assert result.returncode != 0, result
    assert result.stdout == "", result.stdout
    message = result.stderr.strip()
    assert "Traceback" not in message, message
    assert len(message.splitlines()) == 1, message
    assert message.startswith("error: "), message
    for word in words:
        assert word.lower() in message.lower(), (word, message)
    return message


def test_readme_flow_moves_exactly_the_amount_and_the_fee(shared_node: NodeProcess) -> None:
    node = shared_node
    key = node.cli_json("keys", "new", "alice", "--no-password")
    assert key["name"] == "alice" and key["encrypted"] is False
    alice = key["address"]
    assert re.fullmatch(r"0x[0-9a-f]{40}", alice)
    assert any(k["name"] == "alice" and k["address"] == alice for k in node.cli_json("keys", "list"))

    validator = cli_json(node, "status")["validator"]
    dev_before, alice_before, validator_before = balance(node, "dev"), balance(node, alice), balance(node, validator)
    assert alice_before == 0

    sent = cli_json(node, "tx", "transfer", "--from", "dev", "--to", alice, "--amount", "1.5")
    assert sent["from"] == DEV_ADDRESS and sent["to"] == alice and sent["value"] == str(1_500_000_000)
    receipt = sent["receipt"]
    assert receipt["status"] == "success" and receipt["tx_hash"] == sent["hash"]
    assert receipt["gas_used"] == 21_000
    # The output names the chain and the node it went to: every dev chain has the same id and dev key.
    assert sent["chain_id"] == cli_json(node, "status")["chain_id"] and sent["rpc"] == node.url

    assert balance(node, alice) == alice_before + 1_500_000_000
    assert balance(node, "alice") == 1_500_000_000  # by key name, too
    assert balance(node, "dev") == dev_before - 1_500_000_000 - FEE
    assert balance(node, validator) == validator_before + FEE

    shown = cli_json(node, "account", "show", "alice")
    assert shown["proof_verified"] is True
    assert shown["address"] == alice and shown["balance"] == str(1_500_000_000) and shown["nonce"] == 0
    assert shown["exists"] is True
    assert cli_json(node, "account", "show", "dev")["proof_verified"] is True

    got = cli_json(node, "tx", "get", sent["hash"])
    assert got["hash"] == sent["hash"] and got["pending"] is False and got["block_height"] == receipt["block_height"]
    assert cli_json(node, "tx", "receipt", sent["hash"]) == receipt

    # Spend from the new key: alice pays amount + fee, dev receives the amount.
    dev_now = balance(node, "dev")
    back = cli_json(node, "tx", "transfer", "--from", "alice", "--to", DEV_ADDRESS, "--amount", "0.5")
    assert back["receipt"]["status"] == "success" and back["nonce"] == 0
    assert balance(node, "alice") == 1_000_000_000 - FEE
    assert balance(node, "dev") == dev_now + 500_000_000
    human = node.cli("tx", "transfer", "--from", "dev", "--to", alice, "--amount", "0.1").stdout
    assert f"sent to chain {sent['chain_id']} at {node.url}" in human


def test_status_json_fields(shared_node: NodeProcess) -> None:
    status = cli_json(shared_node, "status")
    head = shared_node.rpc.call("chain_head")
    assert status["chain_id"] == 7777
    assert status["chain_name"] == "aichain-dev"
    assert status["client_version"].startswith("aichain-node/")
    assert re.fullmatch(r"0x[0-9a-f]{64}", status["genesis_hash"])
    assert re.fullmatch(r"0x[0-9a-f]{64}", status["head_hash"])
    assert re.fullmatch(r"0x[0-9a-f]{40}", status["validator"])
    assert isinstance(status["head_height"], int) and status["head_height"] <= head["height"]
    assert status["finalized_height"] == status["head_height"]  # instant finality
    assert status["validators"] == 1 and status["peers"] == 0 and status["syncing"] is False
    assert isinstance(status["mempool_txs"], int) and status["mempool_txs"] >= 0
    assert status["rpc"] == shared_node.url
    human = shared_node.cli("status", "--rpc", shared_node.url).stdout
    assert "chain_id" in human and "7777" in human


def test_transfer_over_the_balance_fails_with_one_line(shared_node: NodeProcess) -> None:
    node = shared_node
    bob = node.cli_json("keys", "new", "bob", "--no-password")["address"]
    cli_json(node, "tx", "transfer", "--from", "dev", "--to", bob, "--amount", "1")
    result = node.cli("tx", "transfer", "--from", "bob", "--to", DEV_ADDRESS, "--amount", "2", check=False)
    assert_one_line_error(result, "balance")
    # Exactly the balance is not enough either: the fee comes on top.
    result = node.cli("tx", "transfer", "--from", "bob", "--to", DEV_ADDRESS, "--amount", "1", check=False)
    assert_one_line_error(result, "balance")
    assert balance(node, bob) == UNIT  # nothing moved


@pytest.mark.parametrize(
    "args",
    [
        ("status",),
        ("account", "balance", DEV_ADDRESS),
        ("account", "show", DEV_ADDRESS),
        ("tx", "transfer", "--from", "dev", "--to", DEV_ADDRESS, "--amount", "1"),
        ("tx", "get", "0x" + "ab" * 32),
    ],
)
def test_cli_without_a_node_says_no_node_answers(shared_node: NodeProcess, args: tuple[str, ...]) -> None:
    # AICHAIN_RPC points at a live node; the explicit --rpc must win over it.
    dead = f"http://127.0.0.1:{free_port()}"
    result = shared_node.cli(*args, "--rpc", dead, "--json", check=False)
    assert_one_line_error(result, "no node answers", dead)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("tx", "transfer", "--from", "dev", "--to", "0x12", "--amount", "1"), ["address"]),
        (("tx", "transfer", "--from", "dev", "--to", DEV_ADDRESS, "--amount", "abc"), ["amount"]),
        (("tx", "transfer", "--from", "nobody", "--to", DEV_ADDRESS, "--amount", "1"), ["nobody"]),
        (("account", "balance", "nobody"), ["nobody"]),
        (("tx", "get", "0x1234"), ["hash"]),
        (("tx", "receipt", "0x" + "ab" * 32), ["no receipt"]),
        (("tx", "get", "0x" + "ab" * 32), ["no transaction"]),
    ],
)
def test_cli_errors_are_one_friendly_line(shared_node: NodeProcess, args: tuple[str, ...], words: list[str]) -> None:
    assert_one_line_error(shared_node.cli(*args, check=False), *words)


# --- help ----------------------------------------------------------------------------------------

_COMMAND_ROW = re.compile(r"^(?:│ |  )([a-z][a-z0-9-]*)\s{2,}\S")


def _help(path: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "100"}
    return subprocess.run([CLI, *path, "--help"], capture_output=True, text=True, timeout=60, env=env)


def _subcommands(help_text: str) -> list[str]:
    """Command names listed in the "Commands" section of a help page (rich panel or plain click)."""
    names: list[str] = []
    in_commands = False
    for line in help_text.splitlines():
        if re.match(r"^(╭─ Commands|Commands:)", line):
            in_commands = True
            continue
        if in_commands and (line.startswith("╰") or (line and not line.startswith(("│", " ")))):
            break
        match = _COMMAND_ROW.match(line) if in_commands else None
        if match:
            names.append(match.group(1))
    return names


def test_help_of_every_command_works() -> None:
    seen: dict[tuple[str, ...], str] = {}
    level: list[tuple[str, ...]] = [()]
    with ThreadPoolExecutor(max_workers=4) as pool:
        while level:
            results = list(pool.map(_help, level))
            following: list[tuple[str, ...]] = []
            for path, result in zip(level, results, strict=True):
                assert result.returncode == 0, (path, result.stderr)
                assert "Traceback" not in result.stdout + result.stderr
                assert "Usage: aichain-node" + "".join(" " + p for p in path) in result.stdout, result.stdout
                seen[path] = result.stdout
                following += [(*path, name) for name in _subcommands(result.stdout)]
            level = following
    commands = set(seen)
    for expected in [
        ("init",),
        ("start",),
        ("status",),
        ("keys", "new"),
        ("keys", "list"),
        ("keys", "show"),
        ("account", "balance"),
        ("account", "show"),
        ("tx", "transfer"),
        ("tx", "get"),
        ("tx", "receipt"),
    ]:
        assert expected in commands, sorted(commands)
    for path in NODE_COMMANDS:
        assert "--rpc" in seen[path] and "--json" in seen[path], path
    start = seen[("start",)]
    for flag in ("--dev", "--datadir", "--rpc-addr", "--rpc-port", "--p2p-port", "--block-time-ms"):
        assert flag in start, flag
