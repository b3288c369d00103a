"""`AsyncClient`: a node over JSON-RPC and the artifact HTTP API, for asyncio applications.

It holds an optional signing key. With one, it builds transactions (chain id and minimum gas
price asked of the node once, nonces tracked locally so that several sends in a row do not
collide), signs them, sends them and waits until they are in a finalized block. Contract
values cross as the node's JSON form (`core.contract_json`): bytes as 0x-hex, lists, ints,
strings. Errors are the node's own types (`aichain_node.errors`).

    async with AsyncClient("http://127.0.0.1:8545", key) as node:
        receipt = await node.transfer(recipient, 10**9)
        owners = await node.view(MODELS, "owners_of", "resnet")

Every request has a timeout; a node that does not answer raises `NodeUnreachable`. Artifact
bytes (upload, download, signed reads of private plaintext) are moved by the
`aichain_node.artifact_transfers.ArtifactTransfers` the client holds, whose calls it offers.
A signed read names the node it is for (its node key, asked of `node_status` once per client);
`node_key=` pins the key the node must report, for a node run by someone else.

What the client keeps on this machine goes where it is told, read nowhere else (no environment
variable): pulled models under `model_cache_dir` (default `~/.aichain/models`), the content keys
of the private models it publishes under `content_key_dir` (default `~/.aichain/content-keys`).
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from aichain_node.artifact_transfers import FETCH_WAIT_S, STREAM_BLOCK, ArtifactTransfers, Progress, ReadAs
from aichain_node.content_keys import DEFAULT_CONTENT_KEY_DIR
from aichain_node.errors import NodeUnreachable, NoKey, NotFinalized, TransactionFailed, WrongNode, error_from_rpc
from core.contract_json import value_from_json, value_to_json
from core.contract_values import encode_call
from core.keys import PrivateKey, address_hex
from core.read_request import AUDIENCE_SIZE, parse_node_key
from core.transaction import Transaction, TxKind

if TYPE_CHECKING:
    from aichain_node.models import AsyncModels

DEFAULT_URL = "http://127.0.0.1:8545"
DEFAULT_MODEL_CACHE_DIR = Path("~/.aichain/models")
DEFAULT_GAS = 5_000_000
TRANSFER_GAS = 21_000
WAIT_S = 60.0


class AsyncClient:
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
        """`admin_token`: the node's admin token (the text of its `[rpc] admin_token_file`), sent with JSON-RPC
        calls and uploads so that a node elsewhere serves its admin methods (docs/rpc.md, "Admin methods");
        a client on the node's own machine needs none unless the node says so.
        `node_key`: the node key the node at `url` must report before this client signs it a read of private
        plaintext (`aichain-node status` on that node shows it); None trusts what the node reports.
        `model_cache_dir`: where pulled models are kept (default `DEFAULT_MODEL_CACHE_DIR`, ~/.aichain/models);
        `content_key_dir`: where the content keys of the private models this client publishes are kept (default
        `DEFAULT_CONTENT_KEY_DIR`, ~/.aichain/content-keys)."""
        if node_key is not None and len(node_key) != AUDIENCE_SIZE:
            raise ValueError(f"node_key is a node's public key of {AUDIENCE_SIZE} bytes, not {len(node_key)}")
        self.url = url.rstrip("/")
        self.key = key
        self.timeout = timeout
        self.model_cache_dir = Path(model_cache_dir or DEFAULT_MODEL_CACHE_DIR).expanduser()
        self.content_key_dir = Path(content_key_dir or DEFAULT_CONTENT_KEY_DIR).expanduser()
        self.pinned_node_key = node_key
        self.admin_token = admin_token.strip() if admin_token else None
        self._node_key: bytes | None = None  # what the node reported (and the pin allowed), asked once
        self._session: aiohttp.ClientSession | None = None
        self._ids = itertools.count(1)
        self._chain: tuple[int, int] | None = None  # (chain id, minimum gas price)
        self._next_nonce: int | None = None
        self._nonce_lock = asyncio.Lock()
        self._models: AsyncModels | None = None
        self._artifacts = ArtifactTransfers(self)

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
            raise NoKey(
                "this needs an account's key (to sign, or to open a content-key envelope): give one to the "
                "client (AsyncClient(url, key)), or --from KEY on the command line"
            )
        return self.key

    @property
    def models(self) -> AsyncModels:
        """Models and licences: publish, buy, pull, verify, run, record (aichain_node.models, aichain_node.runs)."""
        if self._models is None:
            from aichain_node.models import AsyncModels

            self._models = AsyncModels(self)
        return self._models

    def session(self) -> aiohttp.ClientSession:
        """The HTTP session this client's requests share, opened at the first request (`close` closes it)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_read=self.timeout))
        return self._session

    def admin_headers(self) -> dict[str, str]:
        """The header that carries the admin token, if this client has one (never on signed reads, which
        carry their own Authorization)."""
        return {} if self.admin_token is None else {"Authorization": f"Bearer {self.admin_token}"}

    # --- JSON-RPC ---------------------------------------------------------------------------

    async def rpc(self, method: str, *params: Any, timeout: float | None = None) -> Any:
        """Call a JSON-RPC method; its result, or the node's error as its type."""
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
        try:
            async with asyncio.timeout(timeout or self.timeout):
                async with self.session().post(self.url, json=body, headers=self.admin_headers()) as response:
                    try:
                        answer = await response.json(content_type=None)
                    except ValueError:  # not JSON: a web server, not a node's RPC endpoint
                        raise NodeUnreachable(
                            f"{self.url} answered HTTP {response.status}, not JSON-RPC: is it a node's RPC URL?"
                        ) from None
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise NodeUnreachable(
                f"no node answers at {self.url} ({exc.__class__.__name__}: {exc}); start one with "
                "`aichain-node start --dev` or give its RPC URL (--rpc URL on the command line)"
            ) from exc
        if not isinstance(answer, dict):
            raise NodeUnreachable(f"{self.url} did not answer JSON-RPC")
        if "error" in answer:
            error = answer["error"]
            code = error.get("code") if isinstance(error, dict) else None
            if not isinstance(code, int) or isinstance(code, bool):
                raise NodeUnreachable(f"{self.url} answered a malformed JSON-RPC error: {str(error)[:200]}")
            raise error_from_rpc(code, str(error.get("message", "")), error.get("data"))
        return answer.get("result")

    async def chain_id(self) -> int:
        return (await self._chain_params())[0]

    async def node_key(self) -> bytes:
        """The node key of the node this client talks to: the audience its signed reads name. Asked of
        `node_status` once; with a pinned `node_key`, the node must report that one (else `WrongNode`, and
        nothing is signed for it)."""
        if self._node_key is None:
            reported = (await self.rpc("node_status")).get("node_key")
            try:
                key = parse_node_key(reported)
            except ValueError:
                raise WrongNode(
                    f"the node at {self.url} reports no node key ({reported!r}), so no read can be signed "
                    "for it alone: it is older than this client; upgrade it"
                ) from None
            pinned = self.pinned_node_key
            if pinned is not None and key != pinned:
                raise WrongNode(
                    f"the node at {self.url} reports node key 0x{key.hex()}, not 0x{pinned.hex()} as this "
                    "client was told to expect (node_key=): it is another node, or one that lies about "
                    "which it is, so no read of private plaintext is signed for it"
                )
            self._node_key = key
        return self._node_key

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
        """Sign and send a transaction, then (with `wait`) return its receipt once finalized.

        With `check`, a failed execution raises `TransactionFailed` (carrying the receipt).
        Without `wait`, the answer is `{"tx_hash": …}` as soon as the node admitted it."""
        chain_id, price = await self._chain_params()
        key = self.key
        if key is None:
            raise NoKey(
                "this needs an account's key (to sign, or to open a content-key envelope): give one to the "
                "client (AsyncClient(url, key)), or --from KEY on the command line"
            )
        async with self._nonce_lock:
            pending = int((await self.rpc("state_getAccount", address_hex(key.address)))["pending_nonce"])
            nonce = pending if self._next_nonce is None else max(pending, self._next_nonce)
            tx = Transaction(chain_id, key.public_key, nonce, gas, price, kind, to, value, data).signed_by(key)
            tx_hash = await self.send_transaction(tx)
            self._next_nonce = nonce + 1
        if not wait:
            return {"tx_hash": tx_hash}
        receipt = await self.wait(tx_hash)
        if check and receipt["status"] != "success":
            raise TransactionFailed(receipt)
        return receipt

    async def send_transaction(self, tx: Transaction) -> str:
        """Send a transaction signed already (by any key); its hash (0x-hex) once the node admitted it."""
        tx_hash: str = (await self.rpc("tx_send", "0x" + tx.encoded.hex()))["hash"]
        return tx_hash

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
                raise NotFinalized(
                    f"{tx_hash} was accepted but is not in a finalized block after {timeout:.0f} s; "
                    "the node may be stalled (see `aichain-node status`)"
                )

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

    # --- artifacts (aichain_node.artifact_transfers) ----------------------------------------

    async def upload(
        self,
        source: Path | bytes,
        *,
        pin: bool = True,
        encrypt: bool = False,
        progress: Progress | None = None,
        content_key: bytes | None = None,
        artifact_id: bytes | None = None,
        publisher: bytes | None = None,
    ) -> dict[str, Any]:
        """Store a file (or bytes) on the node, encrypted with `encrypt`; its manifest summary
        (`ArtifactTransfers.upload`)."""
        return await self._artifacts.upload(
            source,
            pin=pin,
            encrypt=encrypt,
            progress=progress,
            content_key=content_key,
            artifact_id=artifact_id,
            publisher=publisher,
        )

    async def read_headers(
        self, artifact: bytes, read_as: ReadAs, method: str, path: str, range_header: str = ""
    ) -> dict[str, str]:
        """The headers of one signed read of a private artifact's plaintext (`ArtifactTransfers.read_headers`)."""
        return await self._artifacts.read_headers(artifact, read_as, method, path, range_header)

    async def download(
        self, artifact: str | bytes, dest: Path, *, progress: Progress | None = None, read_as: ReadAs | None = None
    ) -> Path:
        """Stream an artifact into `dest`, checked against its id; a private one's plaintext needs `read_as`
        = (model, version) (`ArtifactTransfers.download`)."""
        return await self._artifacts.download(artifact, dest, progress=progress, read_as=read_as)

    async def download_plaintext(
        self,
        summary: dict[str, Any],
        expected: bytes,
        dest: Path,
        read_as: ReadAs,
        *,
        progress: Progress | None = None,
    ) -> Path:
        """A private artifact's plaintext from the node that keeps its key, in signed reads
        (`ArtifactTransfers.download_plaintext`)."""
        return await self._artifacts.download_plaintext(summary, expected, dest, read_as, progress=progress)

    async def download_stored(
        self,
        summary: dict[str, Any],
        expected: bytes,
        dest: Path,
        *,
        content_key: bytes | None = None,
        progress: Progress | None = None,
        follow: bool = False,
    ) -> Path:
        """An artifact's chunks as the node stores them, decrypted here with `content_key`
        (`ArtifactTransfers.download_stored`)."""
        return await self._artifacts.download_stored(
            summary, expected, dest, content_key=content_key, progress=progress, follow=follow
        )

    async def fetch(self, artifact: str, *, pin: bool = True, wait_s: int = 600) -> dict[str, Any]:
        """Have the node fetch an artifact from its peers; the fetch's status (`ArtifactTransfers.fetch`)."""
        return await self._artifacts.fetch(artifact, pin=pin, wait_s=wait_s)

    async def stored_summary(
        self,
        artifact: bytes,
        *,
        fetch: bool = True,
        wait_s: int = FETCH_WAIT_S,
        progress: Progress | None = None,
        follow: bool = False,
    ) -> dict[str, Any]:
        """The node's manifest summary of an artifact, fetched from its peers first if it lacks it
        (`ArtifactTransfers.stored_summary`)."""
        return await self._artifacts.stored_summary(
            artifact, fetch=fetch, wait_s=wait_s, progress=progress, follow=follow
        )


__all__ = ["DEFAULT_MODEL_CACHE_DIR", "DEFAULT_URL", "STREAM_BLOCK", "AsyncClient", "Progress", "ReadAs"]
