"""Multi-node testnets of real `aichain-node` processes for integration tests.

`Testnet` writes a testnet (node/testnet.py) under a temporary directory with free ports,
starts its validators (full nodes on request), and ALWAYS stops every process it started
when the `with` block ends, failing or not: SIGTERM first, then kill -9 whatever is left.
Tests talk to the nodes only through JSON-RPC, the CLI and P2P.

Everything that waits polls with a deadline; nothing sleeps for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from aichain_node import NodeUnreachable
from core.keys import PrivateKey
from node import testnet
from node.p2p.handshake import LocalNode, perform_handshake
from node.p2p.tls import client_context, peer_channel_binding
from node.testnet import TestnetNode, free_port_block
from tests.harness import Rpc
from tests.integration.support import batch
from tests.p2p.support import RawClient

CLI = str(Path(sys.executable).with_name("aichain-node"))
CHAIN_ID = 7778
T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll `condition` until it returns something truthy (returned); fail after `timeout` s.

    An unreachable node (restarting) counts as "not yet"."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = condition()
            if result:
                return result
        except (NodeUnreachable, OSError) as exc:
            last_error = exc
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout} s waiting for {what}"
                + (f" (last error: {last_error})" if last_error else "")
            )
        time.sleep(interval)


class Testnet:
    """`with Testnet(tmp_path, validators=4) as net:` … every node is stopped at the end."""

    __test__ = False  # not a test class, whatever its name

    def __init__(
        self,
        root: Path,
        validators: int = 4,
        *,
        full_nodes: int = 0,
        block_time_ms: int = 200,
        empty_block_interval_ms: int | None = None,
        chain_id: int = CHAIN_ID,
        start: bool = True,
    ) -> None:
        self.root = root
        self.validators = validators
        self.full_nodes = full_nodes
        self.block_time_ms = block_time_ms
        self.empty_block_interval_ms = block_time_ms if empty_block_interval_ms is None else empty_block_interval_ms
        self.chain_id = chain_id
        self.autostart = start
        self.nodes: list[TestnetNode] = []
        self._pids: set[int] = set()

    # --- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> Testnet:
        count = self.validators + self.full_nodes
        base = free_port_block(2 * count)
        self.nodes = testnet.init_testnet(
            self.root,
            self.validators,
            full_nodes=self.full_nodes,
            chain_id=self.chain_id,
            rpc_base_port=base,
            p2p_base_port=base + count,
            block_time_ms=self.block_time_ms,
            empty_block_interval_ms=self.empty_block_interval_ms,
        )
        try:
            if self.autostart:
                self.start(*range(self.validators))
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            self.close()
        finally:
            if exc_type is not None:
                print(self.log_tails())  # shown by pytest with the failure

    def close(self) -> None:
        """SIGTERM every node, wait a little, then kill -9 whatever this testnet started and still runs."""
        alive = [pid for pid in self._pids if testnet._alive(pid)]
        try:
            for pid in alive:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline and any(testnet._alive(pid) for pid in alive):
                time.sleep(0.05)
        finally:
            for pid in alive:
                if testnet._alive(pid):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
            self._pids.clear()
            for node in self.nodes:
                (node.dir / "node.pid").unlink(missing_ok=True)

    def start(self, *indexes: int, extra: list[str] | None = None, timeout: float = 30.0) -> None:
        """Start nodes (already running ones are left alone) and wait until their RPC answers."""
        nodes = [self.nodes[i] for i in indexes]
        for node in nodes:
            self._pids.add(testnet.start_node(node, extra))
        deadline = time.monotonic() + timeout
        for node in nodes:
            while True:
                try:
                    Rpc(node.rpc_url, timeout=2).call("node_status")
                    break
                except NodeUnreachable:
                    if testnet._pid(node) is None:
                        raise AssertionError(f"{node.name} exited:\n{self.log_tail(node)}") from None
                    if time.monotonic() > deadline:
                        raise AssertionError(f"{node.name} did not answer:\n{self.log_tail(node)}") from None
                    time.sleep(0.05)

    def kill(self, *indexes: int) -> None:
        """kill -9: no chance to clean up."""
        for i in indexes:
            node = self.nodes[i]
            pid = testnet._pid(node)
            assert pid is not None, f"{node.name} is not running"
            os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            self._pids.discard(pid)
            (node.dir / "node.pid").unlink(missing_ok=True)

    def running(self, i: int) -> bool:
        return testnet._pid(self.nodes[i]) is not None

    # --- RPC ------------------------------------------------------------------------------

    def rpc(self, i: int, timeout: float = 10.0) -> Rpc:
        return Rpc(self.nodes[i].rpc_url, timeout=timeout)

    def call(self, i: int, method: str, *params: Any) -> Any:
        return self.rpc(i).call(method, *params)

    def height(self, i: int) -> int:
        return int(self.call(i, "chain_head")["height"])

    def heights(self, indexes: Iterable[int]) -> dict[int, int]:
        return {i: self.height(i) for i in indexes}

    def wait_height(self, indexes: Iterable[int], height: int, timeout: float) -> None:
        """Every node in `indexes` has finalized `height`."""
        nodes = list(indexes)
        wait_for(
            lambda: all(self.height(i) >= height for i in nodes),
            timeout,
            f"nodes {nodes} to reach height {height} (now {self._heights_or_errors(nodes)})",
        )

    def _heights_or_errors(self, nodes: list[int]) -> dict[int, int | str]:
        out: dict[int, int | str] = {}
        for i in nodes:
            try:
                out[i] = self.height(i)
            except (NodeUnreachable, OSError) as exc:
                out[i] = type(exc).__name__
        return out

    def hashes(self, i: int, first: int, last: int) -> list[str]:
        """Block hashes at heights first..last (inclusive) of node i, in one batch per 500."""
        out: list[str] = []
        url = self.nodes[i].rpc_url
        for start in range(first, last + 1, 500):
            stop = min(last, start + 499)
            answers = batch(url, [("chain_getBlockByHeight", [h, False]) for h in range(start, stop + 1)])
            for h, answer in zip(range(start, stop + 1), answers, strict=True):
                block = answer.get("result")
                assert block is not None, f"node{i} has no block {h}: {answer}"
                out.append(block["hash"])
        return out

    def blocks(self, i: int, first: int, last: int, full: bool = False) -> list[dict[str, Any]]:
        url = self.nodes[i].rpc_url
        out: list[dict[str, Any]] = []
        for start in range(first, last + 1, 200):
            stop = min(last, start + 199)
            answers = batch(url, [("chain_getBlockByHeight", [h, full]) for h in range(start, stop + 1)])
            for h, answer in zip(range(start, stop + 1), answers, strict=True):
                assert answer.get("result") is not None, f"node{i} has no block {h}: {answer}"
                out.append(answer["result"])
        return out

    def assert_same_chain(self, indexes: Iterable[int], up_to: int | None = None) -> int:
        """Every node in `indexes` holds the same block hash at every height 1..up_to (default:
        the lowest of their heads). Returns the height compared up to."""
        nodes = list(indexes)
        top = min(self.height(i) for i in nodes) if up_to is None else up_to
        reference = self.hashes(nodes[0], 1, top)
        for i in nodes[1:]:
            other = self.hashes(i, 1, top)
            diverging = [h + 1 for h, (a, b) in enumerate(zip(reference, other, strict=True)) if a != b]
            assert not diverging, f"node{nodes[0]} and node{i} differ at heights {diverging[:10]}"
        return top

    def commit_signers(self, i: int, height: int) -> set[str]:
        commit = self.call(i, "chain_getCommit", height)
        assert commit is not None, f"node{i} has no commit for height {height}"
        return {s["validator"].lower() for s in commit["signatures"]}

    def validator_addresses(self, i: int) -> set[str]:
        return {v["address"].lower() for v in self.call(i, "validator_list")}

    # --- files ----------------------------------------------------------------------------

    def validator_key(self, i: int) -> Path:
        return self.nodes[i].dir / "validator.pem"

    def validator_address(self, i: int) -> str:
        from core.keys import address_hex, read_key_file

        return address_hex(read_key_file(self.validator_key(i), None).address).lower()

    def log_tail(self, node: TestnetNode, chars: int = 3000) -> str:
        try:
            return (node.dir / "node.log").read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return "(no log)"

    def log(self, i: int) -> str:
        try:
            return (self.nodes[i].dir / "node.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tails(self) -> str:
        return "\n".join(f"===== {n.name} =====\n{self.log_tail(n)}" for n in self.nodes)

    # --- CLI ------------------------------------------------------------------------------

    def cli(self, i: int, *args: str, timeout: float = 60) -> subprocess.Popen[str]:
        """Start `aichain-node ARGS --rpc <node i>` (returns the process; see `finish`)."""
        env = {**os.environ, "AICHAIN_KEYSTORE": str(self.root / "keystore"), "HOME": str(self.root)}
        env.pop("AICHAIN_RPC", None)
        return subprocess.Popen(
            [CLI, *args, "--rpc", self.nodes[i].rpc_url],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> str:
    """Wait for a CLI process; its stdout, or an assertion error with its stderr."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"`{' '.join(proc.args)}` did not finish within {timeout} s:\n{err}") from None  # type: ignore[arg-type]
    assert proc.returncode == 0, f"`{' '.join(proc.args)}` failed ({proc.returncode}):\n{out}\n{err}"  # type: ignore[arg-type]
    return out


def metric(rpc_url: str, name: str) -> float:
    """The sum of a /metrics family's samples (all labels) at a node."""
    with urllib.request.urlopen(rpc_url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.split("{")[0].split(" ")[0] == name)


async def raw_peer(
    port: int, chain_id: int, genesis_hash: bytes, source: str, key: PrivateKey | None = None
) -> RawClient:
    """A hand-driven P2P client that completes a real handshake with a running node from `source`."""
    key = key or PrivateKey.generate()
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=client_context(), server_hostname="", local_addr=(source, 0)
    )
    local = LocalNode(key, chain_id, genesis_hash)
    hello = await perform_handshake(
        reader, writer, local, side="client", binding=peer_channel_binding(writer), peer_label="node"
    )
    return RawClient(reader, writer, key, hello)


__all__ = ["Testnet", "finish", "free_port_block", "metric", "raw_peer", "wait_for"]
