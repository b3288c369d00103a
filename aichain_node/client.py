"""`Client`: the same API as `AsyncClient`, for scripts and notebooks, without `await`.

It runs an `AsyncClient` on an event loop of its own, in a background thread, so it works
where a loop already runs (Jupyter) as well as in plain scripts; each call blocks until the
answer is there. Close it (or use `with`) to stop the thread.

    with Client("http://127.0.0.1:8545", key) as node:
        node.transfer(recipient, 10**9)
        print(node.balance(recipient))
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from aichain_node.aclient import DEFAULT_GAS, DEFAULT_URL, WAIT_S, AsyncClient, Progress
from core.keys import PrivateKey
from core.transaction import Transaction, TxKind

T = TypeVar("T")


class Client:
    def __init__(
        self,
        url: str = DEFAULT_URL,
        key: PrivateKey | None = None,
        *,
        timeout: float = 30.0,
        node_key: bytes | None = None,
        model_cache_dir: Path | str | None = None,
        content_key_dir: Path | str | None = None,
        admin_token: str | None = None,
    ) -> None:
        """See `AsyncClient`: `admin_token` is the node's admin token, sent for its admin methods; `node_key` pins
        the node key the node must report before a read is signed for it;
        `model_cache_dir` and `content_key_dir` are where pulled models and kept content keys go."""
        # The async client, run on this loop:
        self.aio = AsyncClient(
            url,
            key,
            timeout=timeout,
            node_key=node_key,
            model_cache_dir=model_cache_dir,
            content_key_dir=content_key_dir,
            admin_token=admin_token,
        )
        self._loop = asyncio.new_event_loop()  # (made after it, so that bad arguments leave no thread behind)
        self._thread = threading.Thread(target=self._loop.run_forever, name="aichain-sdk", daemon=True)
        self._thread.start()

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self._loop.is_closed():
            coroutine.close()
            raise RuntimeError("this client is closed")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._run(self.aio.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    @property
    def url(self) -> str:
        return self.aio.url

    @property
    def key(self) -> PrivateKey | None:
        return self.aio.key

    @property
    def address(self) -> bytes:
        return self.aio.address

    @property
    def models(self) -> Any:
        """The models API of `AsyncClient.models` (publish, buy, pull, verify, run, record, receipts, …),
        each call blocking until its answer is there."""
        return _Blocking(self._run, self.aio.models)

    def rpc(self, method: str, *params: Any, timeout: float | None = None) -> Any:
        return self._run(self.aio.rpc(method, *params, timeout=timeout))

    def chain_id(self) -> int:
        return self._run(self.aio.chain_id())

    def node_key(self) -> bytes:
        """See `AsyncClient.node_key`: the node key signed reads from this client name."""
        return self._run(self.aio.node_key())

    def head(self) -> dict[str, Any]:
        return self._run(self.aio.head())

    def balance(self, address: bytes | None = None) -> int:
        return self._run(self.aio.balance(address))

    def transact(
        self,
        kind: TxKind,
        to: bytes,
        value: int = 0,
        data: bytes = b"",
        *,
        gas: int = DEFAULT_GAS,
        wait: bool = True,
        check: bool = True,
    ) -> dict[str, Any]:
        return self._run(self.aio.transact(kind, to, value, data, gas=gas, wait=wait, check=check))

    def send_transaction(self, tx: Transaction) -> str:
        """See `AsyncClient.send_transaction`: a transaction signed already; its hash once admitted."""
        return self._run(self.aio.send_transaction(tx))

    def wait(self, tx_hash: str, timeout: float = WAIT_S) -> dict[str, Any]:
        return self._run(self.aio.wait(tx_hash, timeout))

    def wait_ok(self, tx_hash: str, timeout: float = WAIT_S) -> dict[str, Any]:
        """`wait`, raising TransactionFailed if the transaction's execution failed."""
        return self._run(self.aio.wait_ok(tx_hash, timeout))

    def transfer(self, to: bytes, amount: int, *, wait: bool = True) -> dict[str, Any]:
        return self._run(self.aio.transfer(to, amount, wait=wait))

    def send(
        self, contract: bytes, function: str, *args: Any, value: int = 0, gas: int = DEFAULT_GAS, wait: bool = True
    ) -> dict[str, Any]:
        return self._run(self.aio.send(contract, function, *args, value=value, gas=gas, wait=wait))

    def view(self, contract: bytes, function: str, *args: Any, caller: bytes | None = None) -> Any:
        return self._run(self.aio.view(contract, function, *args, caller=caller))

    def upload(
        self, source: Path | bytes, *, pin: bool = True, encrypt: bool = False, progress: Progress | None = None
    ) -> dict[str, Any]:
        return self._run(self.aio.upload(source, pin=pin, encrypt=encrypt, progress=progress))

    def download(
        self,
        artifact: str | bytes,
        dest: Path,
        *,
        progress: Progress | None = None,
        read_as: tuple[str, int] | None = None,
    ) -> Path:
        """See `AsyncClient.download`: a private artifact's plaintext needs `read_as` = (model, version)."""
        return self._run(self.aio.download(artifact, dest, progress=progress, read_as=read_as))

    def download_plaintext(
        self,
        summary: dict[str, Any],
        expected: bytes,
        dest: Path,
        read_as: tuple[str, int],
        *,
        progress: Progress | None = None,
    ) -> Path:
        return self._run(self.aio.download_plaintext(summary, expected, dest, read_as, progress=progress))

    def download_stored(
        self,
        summary: dict[str, Any],
        expected: bytes,
        dest: Path,
        *,
        content_key: bytes | None = None,
        progress: Progress | None = None,
    ) -> Path:
        return self._run(self.aio.download_stored(summary, expected, dest, content_key=content_key, progress=progress))

    def fetch(self, artifact: str, *, pin: bool = True, wait_s: int = 600) -> dict[str, Any]:
        return self._run(self.aio.fetch(artifact, pin=pin, wait_s=wait_s))


class _Blocking:
    """Every coroutine method of `target`, run on the client's loop and waited for."""

    def __init__(self, run: Callable[[Coroutine[Any, Any, Any]], Any], target: object) -> None:
        self._run_on_loop = run
        self._target = target

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if not inspect.iscoroutinefunction(attribute):
            return attribute

        @functools.wraps(attribute)
        def blocking(*args: Any, **kwargs: Any) -> Any:
            return self._run_on_loop(attribute(*args, **kwargs))

        return blocking

    def __dir__(self) -> list[str]:
        return [n for n in dir(self._target) if not n.startswith("_")]


__all__ = ["Client"]
