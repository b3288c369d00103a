"""`AsyncClient`: a node over JSON-RPC and the artifact HTTP API, for asyncio applications.

It holds an optional signing key. With one, it builds transactions (chain id and minimum gas
price asked of the node once, nonces tracked locally so that several sends in a row do not
collide), signs them, sends them and waits until they are in a finalized block. Contract
values cross as the node's JSON form (`node.rpc.contracts`): bytes as 0x-hex, lists, ints,
strings. Errors are the node's own types (`node.sdk.errors`).

    async with AsyncClient("http://127.0.0.1:8545", key) as node:
        receipt = await node.transfer(recipient, 10**9)
        owners = await node.view(MODELS, "owners_of", "resnet")

Every request has a timeout; a node that does not answer raises `NodeUnreachable`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from core.artifact import format_id, parse_id
from core.keys import PrivateKey, address_hex
from core.sealing import ChunkDecryptionFailed
from core.transaction import Transaction, TxKind
from node.rpc.contracts import value_from_json, value_to_json
from node.sdk.errors import ArtifactMismatch, NodeUnreachable, NoKey, NotFinalized, TransactionFailed, error_from_rpc
from node.sdk.transfer import DigestMismatch, StoredDownload, describe_mismatch, local_id, tar_stream
from vm.contract_tx import encode_call

if TYPE_CHECKING:
    from node.sdk.models import AsyncModels

DEFAULT_URL = "http://127.0.0.1:8545"
DEFAULT_GAS = 2_000_000
TRANSFER_GAS = 21_000
WAIT_S = 60.0
STREAM_BLOCK = 1 << 20
Progress = Callable[[int], None]  # told how many more bytes moved


class AsyncClient:
    def __init__(self, url: str = DEFAULT_URL, key: PrivateKey | None = None, *, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.key = key
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._ids = itertools.count(1)
        self._chain: tuple[int, int] | None = None  # (chain id, minimum gas price)
        self._next_nonce: int | None = None
        self._nonce_lock = asyncio.Lock()
        self._models: AsyncModels | None = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def address(self) -> bytes:
        return self.key_or_fail().address

    def key_or_fail(self) -> PrivateKey:
        if self.key is None:
            raise NoKey("this needs an account's key (to sign, or to open a content-key envelope): give one to the "
                        "client (AsyncClient(url, key)), or --from KEY on the command line")
        return self.key

    @property
    def models(self) -> AsyncModels:
        """Models and licences: publish, buy, pull, verify, run, record (node.sdk.models, node.sdk.runs)."""
        if self._models is None:
            from node.sdk.runs import AsyncModelRuns  # the models API with pull and run (onnxruntime) on top

            self._models = AsyncModelRuns(self)
        return self._models

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_read=self.timeout))
        return self._session

    # --- JSON-RPC ---------------------------------------------------------------------------

    async def rpc(self, method: str, *params: Any, timeout: float | None = None) -> Any:
        """Call a JSON-RPC method; its result, or the node's error as its type."""
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
        try:
            async with asyncio.timeout(timeout or self.timeout):
                async with self._http().post(self.url, json=body) as response:
                    answer = await response.json(content_type=None)
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise NodeUnreachable(f"no node answers at {self.url} ({exc.__class__.__name__}: {exc}); start one "
                                  "with `aichain-node start --dev` or give its RPC URL") from exc  # fmt: skip
        if not isinstance(answer, dict):
            raise NodeUnreachable(f"{self.url} did not answer JSON-RPC")
        if "error" in answer:
            error = answer["error"]
            raise error_from_rpc(int(error.get("code", -32000)), str(error.get("message", "")), error.get("data"))
        return answer.get("result")

    async def chain_id(self) -> int:
        return (await self._chain_params())[0]

    async def _chain_params(self) -> tuple[int, int]:
        if self._chain is None:
            status, genesis = await asyncio.gather(self.rpc("node_status"), self.rpc("node_genesis"))
            self._chain = (int(status["chain_id"]), int(genesis["params"]["min_gas_price"]))
        return self._chain

    async def head(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.rpc("chain_head")
        return result

    async def balance(self, address: bytes | None = None) -> int:
        account = await self.rpc("state_getAccount", address_hex(address or self.address))
        return int(account["balance"])

    # --- transactions -----------------------------------------------------------------------

    async def transact(
        self, kind: TxKind, to: bytes, value: int = 0, data: bytes = b"", *, gas: int = DEFAULT_GAS,
        wait: bool = True, check: bool = True,
    ) -> dict[str, Any]:  # fmt: skip
        """Sign and send a transaction, then (with `wait`) return its receipt once finalized.

        With `check`, a failed execution raises `TransactionFailed` (carrying the receipt).
        Without `wait`, the answer is `{"tx_hash": …}` as soon as the node admitted it."""
        chain_id, price = await self._chain_params()
        key = self.key
        if key is None:
            raise NoKey("this needs an account's key (to sign, or to open a content-key envelope): give one to the "
                        "client (AsyncClient(url, key)), or --from KEY on the command line")
        async with self._nonce_lock:
            pending = int((await self.rpc("state_getAccount", address_hex(key.address)))["pending_nonce"])
            nonce = pending if self._next_nonce is None else max(pending, self._next_nonce)
            tx = Transaction(chain_id, key.public_key, nonce, gas, price, kind, to, value, data).signed_by(key)
            tx_hash = (await self.rpc("tx_send", "0x" + tx.encoded.hex()))["hash"]
            self._next_nonce = nonce + 1
        if not wait:
            return {"tx_hash": tx_hash}
        receipt = await self.wait(tx_hash)
        if check and receipt["status"] != "success":
            raise TransactionFailed(receipt)
        return receipt

    async def wait(self, tx_hash: str, timeout: float = WAIT_S) -> dict[str, Any]:
        """The receipt of a transaction once it is in a finalized block (instant finality: one block).

        Raises `TransactionEvicted` (its `data["reason"]` says why) as soon as the node drops it from
        its mempool uncommitted, and `NotFinalized` if it is still pending after `timeout` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            step = max(1, min(int(left), 60))
            receipt = await self.rpc("tx_wait", tx_hash, step, timeout=step + self.timeout)
            if receipt is not None:
                result: dict[str, Any] = receipt
                return result
            if loop.time() >= deadline:
                raise NotFinalized(f"{tx_hash} was accepted but is not in a finalized block after {timeout:.0f} s; "
                                   "the node may be stalled (see `aichain-node status`)")  # fmt: skip

    async def wait_ok(self, tx_hash: str, timeout: float = WAIT_S) -> dict[str, Any]:
        """`wait`, then raise `TransactionFailed` if the transaction failed."""
        receipt = await self.wait(tx_hash, timeout)
        if receipt["status"] != "success":
            raise TransactionFailed(receipt)
        return receipt

    async def transfer(self, to: bytes, amount: int, *, wait: bool = True) -> dict[str, Any]:
        return await self.transact(TxKind.TRANSFER, to, amount, gas=TRANSFER_GAS, wait=wait)

    async def send(
        self, contract: bytes, function: str, *args: Any, value: int = 0, gas: int = DEFAULT_GAS, wait: bool = True
    ) -> dict[str, Any]:
        """Call a contract function in a transaction; its receipt (events included) once finalized."""
        return await self.transact(TxKind.CALL, contract, value, encode_call(function, list(args)), gas=gas, wait=wait)

    async def view(self, contract: bytes, function: str, *args: Any, caller: bytes | None = None) -> Any:
        """Run a contract function read-only against the head; its result as Python values."""
        params = [address_hex(contract), function, [value_to_json(a) for a in args]]
        if caller is not None or self.key is not None:
            params.append(address_hex(caller or self.address))
        answer = await self.rpc("contract_call", *params)
        return value_from_json(answer["result"])

    # --- artifacts ---------------------------------------------------------------------------

    async def upload(
        self, source: Path | bytes, *, pin: bool = True, encrypt: bool = False, progress: Progress | None = None,
        content_key: bytes | None = None, artifact_id: bytes | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Store a file (or bytes) on the node; its manifest summary (`id`, `size`, …).

        With `encrypt`, the node keeps it encrypted under a content key (the id stays the
        plaintext's): `content_key` if given, else one the node makes; the file is hashed here
        first, since the node must be told the id (unless the caller gives it, `artifact_id`)."""
        query = f"?pin={'true' if pin else 'false'}" + ("&encrypt=true" if encrypt else "")
        headers = {"Content-Type": "application/octet-stream"}
        if encrypt:
            digest = artifact_id or await asyncio.to_thread(_sha256_of if isinstance(source, bytes) else local_id,
                                                            source)  # fmt: skip
            headers["X-Artifact-Id"] = format_id(digest)
            if content_key is not None:
                headers["X-Content-Key"] = base64.b64encode(content_key).decode()
        if isinstance(source, Path) and source.is_dir():
            headers["Content-Type"] = "application/x-tar"
            body: AsyncIterator[bytes] = tar_stream(source, progress)
        else:
            headers["Content-Length"] = str(len(source) if isinstance(source, bytes) else os.path.getsize(source))
            body = _body(source, progress)
        try:
            async with self._http().put(self.url + "/artifacts" + query, data=body,
                                        headers=headers) as response:  # fmt: skip
                answer = await response.json(content_type=None)
        except aiohttp.ClientConnectionError as exc:
            raise NodeUnreachable(f"the upload to {self.url} broke off: {exc}") from exc
        if response.status != 201:
            raise ArtifactMismatch(f"the node refused the upload (HTTP {response.status}): {answer.get('error')}")
        result: dict[str, Any] = answer
        return result

    async def download(self, artifact: str | bytes, dest: Path, *, progress: Progress | None = None) -> Path:
        """Stream an artifact the node stores into `dest`, checking its SHA-256 against the id.

        The bytes go to `dest.part` first and are renamed only when the digest matches, so a
        wrong or cut-off download never sits under the real name."""
        digest = parse_id(artifact) if isinstance(artifact, str) else artifact
        part = dest.with_name(dest.name + ".part")
        hasher = hashlib.sha256()
        try:
            async with self._http().get(f"{self.url}/artifacts/{format_id(digest)}") as response:
                if response.status != 200:
                    text = await response.text()
                    raise error_from_rpc(-32111 if response.status == 404 else -32110,
                                         f"HTTP {response.status}: {text.strip()[:200]}")  # fmt: skip
                with part.open("wb") as out:
                    async for block in response.content.iter_chunked(STREAM_BLOCK):
                        hasher.update(block)
                        await asyncio.to_thread(out.write, block)
                        if progress is not None:
                            progress(len(block))
        except aiohttp.ClientPayloadError:
            part.unlink(missing_ok=True)
            raise ArtifactMismatch(f"the node's stream of {format_id(digest)} ended early (a chunk it holds may be "
                                   "damaged: `aichain-node artifact verify --repair`); nothing was kept") from None
        except aiohttp.ClientConnectionError as exc:
            part.unlink(missing_ok=True)
            raise NodeUnreachable(f"the download from {self.url} broke off: {exc}") from exc
        if hasher.digest() != digest:
            part.unlink(missing_ok=True)
            raise ArtifactMismatch(f"the bytes served for {format_id(digest)} hash to "
                                   f"{format_id(hasher.digest())}; nothing was kept")  # fmt: skip
        part.replace(dest)
        return dest

    async def download_stored(
        self, summary: dict[str, Any], expected: bytes, dest: Path, *, content_key: bytes | None = None,
        progress: Progress | None = None, follow: bool = False,
    ) -> Path:  # fmt: skip
        """Stream an artifact's chunks as the node stores them, decrypt them here (with `content_key`),
        and write the file or directory to `dest` once its digests match `expected`, the id the caller
        trusts (the chain's). `summary` is the node's manifest summary (`artifact_info`). With `follow`,
        the node is still fetching it from peers and sends each chunk as it lands.

        Raises `ArtifactMismatch` when the bytes are not that artifact; nothing is left behind."""
        job = StoredDownload(summary, expected, content_key, dest)
        if job.encrypted and content_key is None:
            raise ValueError(f"{format_id(expected)} is encrypted: a content key is needed to read it")
        await asyncio.to_thread(job.begin)
        pending: asyncio.Future[None] | None = None
        try:
            url = f"{self.url}/artifacts/{format_id(expected)}/stored" + ("?follow=true" if follow else "")
            async with self._http().get(url) as response:
                if response.status != 200:
                    text = await response.text()
                    raise error_from_rpc(-32111 if response.status == 404 else -32110,
                                         f"HTTP {response.status}: {text.strip()[:200]}")  # fmt: skip
                for index in range(job.chunks):
                    want = job.stored_size(index)
                    chunk = await response.content.readexactly(want)
                    if pending is not None:
                        await pending  # the previous chunk is decrypted and written while this one arrived
                    pending = asyncio.ensure_future(asyncio.to_thread(job.take, chunk))
                    if progress is not None:
                        progress(want)
                if pending is not None:
                    await pending
                    pending = None
                if await response.content.read(1):
                    raise DigestMismatch(expected, b"", "the node sent more bytes than the artifact holds")
            return await asyncio.to_thread(job.finish)
        except (asyncio.IncompleteReadError, aiohttp.ClientPayloadError):
            await _settle(pending)
            job.abort()
            raise ArtifactMismatch(f"the node's stream of {format_id(expected)} ended early (a chunk it holds may be "
                                   "damaged: `aichain-node artifact verify --repair`); nothing was kept") from None
        except aiohttp.ClientConnectionError as exc:
            await _settle(pending)
            job.abort()
            raise NodeUnreachable(f"the download from {self.url} broke off: {exc}") from exc
        except ChunkDecryptionFailed:
            await _settle(pending)
            job.abort()
            raise ArtifactMismatch(f"a chunk of {format_id(expected)} does not decrypt under the content key: the node "
                                   "served other or altered ciphertext; nothing was kept") from None
        except DigestMismatch as exc:
            await _settle(pending)
            job.abort()
            raise ArtifactMismatch(describe_mismatch(exc, expected)) from None
        except BaseException:
            await _settle(pending)
            job.abort()
            raise

    async def fetch(self, artifact: str, *, pin: bool = True, wait_s: int = 600) -> dict[str, Any]:
        """Have the node fetch an artifact from its peers (every chunk checked); the fetch's status."""
        result: dict[str, Any] = await self.rpc(
            "artifact_fetch", artifact, pin, False, wait_s, timeout=wait_s + self.timeout
        )
        return result


async def _settle(pending: asyncio.Future[None] | None) -> None:
    """Let a chunk still being written finish (or fail) before its download is cleaned up."""
    if pending is not None:
        with contextlib.suppress(BaseException):
            await pending


def _sha256_of(source: Path | bytes) -> bytes:
    if isinstance(source, bytes):
        return hashlib.sha256(source).digest()
    hasher = hashlib.sha256()
    with open(source, "rb") as stream:
        while block := stream.read(STREAM_BLOCK):
            hasher.update(block)
    return hasher.digest()


async def _body(source: Path | bytes, progress: Progress | None) -> AsyncIterator[bytes]:
    if isinstance(source, bytes):
        for offset in range(0, len(source), STREAM_BLOCK):
            block = source[offset : offset + STREAM_BLOCK]
            if progress is not None:
                progress(len(block))
            yield block
        return
    with open(source, "rb") as stream:
        while block := await asyncio.to_thread(stream.read, STREAM_BLOCK):
            if progress is not None:
                progress(len(block))
            yield block


__all__ = ["DEFAULT_URL", "AsyncClient"]
