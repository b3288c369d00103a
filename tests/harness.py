"""Real `aichain-node` processes on 127.0.0.1 for integration tests.

Each `NodeProcess` runs the installed console script in its own temporary data directory
and keystore, on a free port, with its output in a log file. It is always stopped, even
when a test fails: use it as a context manager or through the `dev_node` fixture.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from aichain_node import Client, NodeUnreachable
from core.transaction import Transaction

CLI = str(Path(sys.executable).with_name("aichain-node"))


class Rpc:
    """JSON-RPC calls from a test through the SDK's client (`aichain_node.Client`), one client a call, so
    there is nothing to close. Errors are the SDK's typed ones (`NodeUnreachable`, `NonceTooLow`, …)."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url
        self.timeout = timeout

    def call(self, method: str, *params: Any) -> Any:
        with Client(self.url, timeout=self.timeout) as client:
            return client.rpc(method, *params)

    def send(self, tx: Transaction) -> str:
        """Send a signed transaction; its hash once the node admitted it."""
        with Client(self.url, timeout=self.timeout) as client:
            return client.send_transaction(tx)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NodeProcess:
    def __init__(self, root: Path, *, block_time_ms: int | None = None, extra: list[str] | None = None) -> None:
        self.root = root
        self.datadir = root / "data"
        self.keystore = root / "keystore"
        self.log_path = root / "node.log"
        self.port = free_port()
        self.p2p_port = free_port()
        self.block_time_ms = block_time_ms
        self.extra = extra or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.env = {**os.environ, "AICHAIN_KEYSTORE": str(self.keystore), "HOME": str(root)}
        self.env.pop("AICHAIN_RPC", None)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def rpc(self) -> Rpc:
        return Rpc(self.url, timeout=30)

    def start(self, timeout: float = 30.0) -> NodeProcess:
        args = [
            CLI,
            "start",
            "--dev",
            "--datadir",
            str(self.datadir),
            "--rpc-port",
            str(self.port),
            "--p2p-port",
            str(self.p2p_port),
            *self.extra,
        ]
        if self.block_time_ms is not None:
            args += ["--block-time-ms", str(self.block_time_ms)]
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"node exited with {self.proc.returncode}:\n{self.log()}")
            try:
                self.rpc.call("node_status")
                return self
            except NodeUnreachable:
                time.sleep(0.05)
        raise TimeoutError(f"node did not answer within {timeout} s:\n{self.log()}")

    def cli(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run an `aichain-node` CLI command against this node."""
        result = subprocess.run(
            [CLI, *args], env={**self.env, "AICHAIN_RPC": self.url}, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(f"`aichain-node {' '.join(args)}` failed ({result.returncode}):\n{result.stderr}")
        return result

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)

    def kill(self) -> None:
        """kill -9: no chance to clean up."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM (like Ctrl-C) and wait; kill -9 if it does not stop in time."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def log(self) -> str:
        try:
            return self.log_path.read_text()[-4000:]
        except FileNotFoundError:
            return ""

    def __enter__(self) -> NodeProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        finally:
            self.kill()
