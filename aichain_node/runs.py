"""Pull, verify, run and record a model version: the half of `client.models` that needs numpy.

    async with AsyncClient(url, key) as node:
        pulled = await node.models.pull("net@2")                 # fetched, checked against the chain, decrypted
        result = await node.models.run("net@2", x, record=True)   # outputs, digests, the receipt on chain

The order of trust: the version's artifact id is read from the chain; the node is asked to
fetch the artifact from its peers; its stored chunks are streamed here, decrypted here with
the content key from this account's envelope, and written under a temporary name; only when
the SHA-256 (or a directory's listing id) equals the chain's id does the model appear under
its name, and only then is onnxruntime allowed to read it.

An owner pulling on a machine that did not publish the version (so keeps no content key) asks
the node that keeps the key for the plaintext instead, in requests signed by its account
(`AsyncClient.download_plaintext`); the node checks on chain that it owns the model.

Pulled models are cached under the client's `model_cache_dir` (default `~/.aichain/models`), in
`NAME/VERSION/`. A cached model is used again if its files still have the size and modification
time they had when they were verified (and the same inode and change time, which no write can
keep); otherwise it is hashed again before it is loaded. A private model's plaintext is readable
by its user only: files 0600 in a 0700 directory (`aichain_node.transfer`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from aichain_node.access import ModelAccess
from aichain_node.artifact_transfers import Progress, ReadAs
from aichain_node.errors import ArtifactMismatch, ReceiptNotFound
from aichain_node.inference import Session, model_file_in, tensor_digest
from aichain_node.stamps import stale_stamp, still_verified, verified_stamp, write_stamp
from aichain_node.terms import ModelRef
from aichain_node.transfer import local_id, private_dir
from aichain_node.views import event_field
from core.artifact import format_id, parse_id
from core.errors import ArtifactError
from core.keys import PrivateKey, address_hex
from core.system_addresses import INFERENCE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pulled:
    model: str
    version: int
    artifact: str
    path: Path  # the file, or the directory of a multi-file model
    encrypted: bool
    cached: bool  # True if a verified copy was already here
    replaced: str | None = None  # why a copy that was here was not used (it had changed), if one was

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "path": str(self.path)}


@dataclass
class Inference:
    model: str
    version: int
    outputs: dict[str, np.ndarray]
    input_hash: bytes
    output_hash: bytes
    receipt: str | None = None  # 0x… hash of the receipt on chain, when recorded
    charged: int | None = None  # units charged to a per-use licence for it
    timings_s: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "input_hash": "0x" + self.input_hash.hex(),
            "output_hash": "0x" + self.output_hash.hex(),
            "receipt": self.receipt,
            "charged": self.charged,
            "outputs": {k: {"dtype": v.dtype.str, "shape": list(v.shape)} for k, v in self.outputs.items()},
            "timings_s": self.timings_s,
        }


class PullingClient(Protocol):
    """What pulling and running need of the client (`AsyncClient`): its account and the directories it
    keeps models and content keys in, contract calls, and the artifact transfers of its node."""

    @property
    def address(self) -> bytes: ...
    @property
    def model_cache_dir(self) -> Path: ...
    @property
    def content_key_dir(self) -> Path: ...
    def key_or_fail(self) -> PrivateKey: ...
    async def view(self, contract: bytes, function: str, *args: Any) -> Any: ...
    async def send(self, contract: bytes, function: str, *args: Any) -> dict[str, Any]: ...
    async def stored_summary(
        self, artifact: bytes, *, progress: Progress | None = None, follow: bool = False
    ) -> dict[str, Any]: ...
    async def download_plaintext(
        self,
        summary: dict[str, Any],
        expected: bytes,
        dest: Path,
        read_as: ReadAs,
        *,
        progress: Progress | None = None,
    ) -> Path: ...
    async def download_stored(
        self,
        summary: dict[str, Any],
        expected: bytes,
        dest: Path,
        *,
        content_key: bytes | None = None,
        progress: Progress | None = None,
        follow: bool = False,
    ) -> Path: ...


class Registry(Protocol):
    """What pulling and running need of the model registry (`aichain_node.models.AsyncModels`)."""

    async def version(self, ref: ModelRef | str) -> dict[str, Any]: ...
    async def licence(self, ref: ModelRef | str, who: bytes | None = None) -> dict[str, Any] | None: ...
    async def is_licensed(self, name: str, version: int, who: bytes | None = None) -> bool: ...
    async def is_owner(self, name: str) -> bool: ...
    async def why_not_licensed(self, ref: ModelRef | str, who: bytes | None = None) -> str: ...


class AsyncModelRuns:
    """Pulling, verification, inference and receipts of model versions, for the client's account: what a
    version is is asked of `registry`, who may read it and with which key of its `ModelAccess`.
    `client.models` holds one and offers its calls."""

    def __init__(self, client: PullingClient, registry: Registry) -> None:
        self.client = client
        self.registry = registry
        self._sessions: dict[tuple[str, float], asyncio.Future[Session]] = {}
        self._pulls: dict[tuple[str, int, str], asyncio.Lock] = {}  # one download of a version at a time
        self.access = ModelAccess(client, registry)  # licences and content keys

    def cache_path(self, name: str, version: int, directory: bool) -> Path:
        return self.client.model_cache_dir / name / str(version) / ("model" if directory else "model.onnx")

    async def content_key(self, name: str, version: int, artifact: bytes, *, wait_s: float | None = None) -> bytes:
        """This account's content key for a private version (`ModelAccess.content_key`)."""
        return await self.access.content_key(name, version, artifact, wait_s=wait_s)

    async def pull(
        self,
        ref: ModelRef | str,
        dest: Path | None = None,
        *,
        progress: Progress | None = None,
        fetch_progress: Progress | None = None,
        refresh: bool = False,
    ) -> Pulled:
        """Fetch a version from the network, check it against the chain, decrypt it here; where it now is.

        The node streams the chunks to this client while it fetches them from its peers (`progress`
        hears of the bytes read here; `fetch_progress` of the bytes the node fetched before
        streaming began, if any). A verified copy already at `dest` (or in the cache) is used as it is."""
        version = await self.registry.version(ref)
        name, number = version["model"], version["version"]
        # Concurrent pulls (or runs) of one version to one place share a download: the later ones
        # wait, then find the verified copy the first one left.
        async with self._pulls.setdefault((name, number, str(dest)), asyncio.Lock()):
            return await self._pull(version, dest, progress=progress, fetch_progress=fetch_progress, refresh=refresh)

    async def _pull(
        self,
        version: dict[str, Any],
        dest: Path | None,
        *,
        progress: Progress | None,
        fetch_progress: Progress | None,
        refresh: bool,
    ) -> Pulled:
        name, number = version["model"], version["version"]
        artifact = parse_id(version["artifact"])
        replaced: str | None = None
        if not refresh:
            candidates = [dest] if dest is not None else [self.cache_path(name, number, d) for d in (False, True)]
            for candidate in candidates:
                stamp = await asyncio.to_thread(verified_stamp, candidate, artifact)
                if stamp is not None:
                    if stamp.get("encrypted"):  # a private model's plaintext is for accounts holding a licence
                        await self.access.require_licence(name, number)
                    return Pulled(name, number, format_id(artifact), candidate, bool(stamp.get("encrypted")), True)
            for candidate in candidates:
                rechecked = await self._recheck(candidate, artifact, name, number)
                if isinstance(rechecked, Pulled):
                    return rechecked
                replaced = replaced or rechecked
        summary = await self.client.stored_summary(artifact, progress=fetch_progress, follow=True)
        directory = summary["kind"] == "directory"
        target = dest or self.cache_path(name, number, directory)
        private = bool(summary["encrypted"])
        if private and dest is None:
            await asyncio.to_thread(private_dir, target.parent)  # the cache's directory of a private version: 0700
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
        if private and not await self._pull_as_owner(summary, name, number, artifact, target, progress):
            key = await self.access.content_key(name, number, artifact)
            await self.client.download_stored(
                summary, artifact, target, content_key=key, progress=progress, follow=bool(summary.get("following"))
            )
        elif not private:
            await self.client.download_stored(
                summary, artifact, target, progress=progress, follow=bool(summary.get("following"))
            )
        await asyncio.to_thread(functools.partial(write_stamp, target, artifact, encrypted=private))
        return Pulled(name, number, format_id(artifact), target, private, False, replaced)

    async def _recheck(self, candidate: Path, artifact: bytes, name: str, number: int) -> Pulled | str | None:
        """A copy verified once whose files changed since: hashed again. The same bytes (a copy that was
        only touched or moved) are stamped and used; other bytes are reported, to be replaced."""
        stamp = await asyncio.to_thread(stale_stamp, candidate, artifact)
        if stamp is None:
            return None
        got = await asyncio.to_thread(local_id, candidate)
        if got != artifact:
            return (
                f"the copy at {candidate} had changed since it was verified: it is {format_id(got)} now, "
                f"not {name}@{number}; it was replaced by a verified download"
            )
        encrypted = bool(stamp.get("encrypted"))
        if encrypted:
            await self.access.require_licence(name, number)
        await asyncio.to_thread(functools.partial(write_stamp, candidate, artifact, encrypted=encrypted))
        return Pulled(name, number, format_id(artifact), candidate, encrypted, True)

    async def _pull_as_owner(
        self, summary: dict[str, Any], name: str, number: int, artifact: bytes, target: Path, progress: Progress | None
    ) -> bool:
        """An owner without the content key here reads the plaintext from the node that keeps it, in signed
        requests; True if it did. False (the envelope path follows) for a licensee, for an owner who kept
        the key here, and when this node keeps no key for it (it answers 409)."""
        await self.access.require_licence(name, number)
        if summary.get("following") or not await self.registry.is_owner(name):
            return False
        if await self.access.kept_key(name, artifact):
            return False
        try:
            await self.client.download_plaintext(summary, artifact, target, (name, number), progress=progress)
        except ArtifactError as exc:  # 409: the node has not got the content key
            if "content key" not in str(exc):
                raise
            return False
        return True

    async def verify(self, path: Path, ref: ModelRef | str) -> dict[str, Any]:
        """Hash a local file or directory and compare it with the version's artifact id on chain."""
        version = await self.registry.version(ref)
        expected = parse_id(version["artifact"])
        got = await asyncio.to_thread(local_id, path)
        if got != expected:
            raise ArtifactMismatch(
                f"{path} is {format_id(got)}, but {version['model']}@{version['version']} on chain "
                f"is {format_id(expected)}: it is not that model"
            )
        await asyncio.to_thread(write_stamp, path, expected)
        return {
            "path": str(path),
            "model": version["model"],
            "version": version["version"],
            "artifact": format_id(expected),
            "ok": True,
        }

    async def local(self, ref: ModelRef | str, path: Path | None = None) -> tuple[dict[str, Any], Path, bool]:
        """The version, a local copy verified against it (`path` if given, else the cache, pulled if need
        be), and whether it is a private model's plaintext taken from the cache (the caller then checks
        the licence)."""
        version = await self.registry.version(ref)
        artifact = parse_id(version["artifact"])
        name, number = version["model"], version["version"]
        if path is not None:
            if not await asyncio.to_thread(still_verified, path, artifact):
                await self.verify(path, ModelRef(name, number))
            return version, path, False
        for directory in (False, True):
            candidate = self.cache_path(name, number, directory)
            stamp = await asyncio.to_thread(verified_stamp, candidate, artifact)
            if stamp is not None:
                return version, candidate, bool(stamp.get("encrypted"))
        pulled = await self.pull(ModelRef(name, number))
        if pulled.replaced:
            log.warning("%s", pulled.replaced)
        return version, pulled.path, False

    async def run(
        self,
        ref: ModelRef | str,
        inputs: Mapping[str, np.ndarray] | np.ndarray,
        *,
        record: bool = False,
        path: Path | None = None,
    ) -> Inference:
        """Run a verified version on numpy inputs; with `record`, put the receipt on chain (charging a per-use
        licence one use).

        A version's artifact is read from the chain once per client, a verified local copy is
        trusted while its files are unchanged, and the licence to a private model's cached copy
        is checked while the model runs: no outputs are returned without it."""
        started = time.perf_counter()
        version, local, needs_licence = await self.local(ref, path)
        name, number = version["model"], version["version"]
        licence_check = asyncio.ensure_future(self.access.require_licence(name, number)) if needs_licence else None
        try:
            ready = time.perf_counter()
            model_file = model_file_in(local)
            session_key = (str(model_file), model_file.stat().st_mtime)
            loading = self._sessions.get(session_key)
            if loading is None:  # concurrent runs of one model wait for the one session being loaded
                loading = self._sessions[session_key] = asyncio.ensure_future(asyncio.to_thread(Session, model_file))
            try:
                session = await asyncio.shield(loading)
            except BaseException:
                if loading.done() and self._sessions.get(session_key) is loading:
                    del self._sessions[session_key]  # a failed load is tried again next time
                raise
            feed = session.feed(inputs)
            loaded = time.perf_counter()
            outputs = await asyncio.to_thread(session.run, feed)
            ran = time.perf_counter()
            if licence_check is not None:
                await licence_check
        finally:
            if licence_check is not None and not licence_check.done():
                licence_check.cancel()
        result = Inference(name, number, outputs, tensor_digest(feed), tensor_digest(outputs))
        result.timings_s = {"resolve_and_verify": ready - started, "load": loaded - ready, "run": ran - loaded}
        if record:
            recorded = await self.record(result.model, result.version, result.input_hash, result.output_hash)
            result.receipt, result.charged = recorded["receipt"], recorded["charged"]
        return result

    async def record(self, name: str, version: int, input_hash: bytes, output_hash: bytes) -> dict[str, Any]:
        """Put an inference receipt on chain; its hash and what it charged."""
        receipt = await self.client.send(INFERENCE, "record", name, version, input_hash, output_hash)
        return {
            "receipt": event_field(receipt, "InferenceRecorded", "receipt"),
            "charged": int(event_field(receipt, "InferenceRecorded", "charged")),
            "number": int(event_field(receipt, "InferenceRecorded", "number")),
            "tx_hash": receipt["tx_hash"],
        }

    async def receipts(self, ref: ModelRef | str, *, first: int = 1, count: int = 256) -> list[dict[str, Any]]:
        """The inference receipts of a version (the latest if none is named), oldest first."""
        version = await self.registry.version(ref)
        rows = await self.client.view(INFERENCE, "receipts_of", version["model"], version["version"], first, count)
        return [
            {
                "model": version["model"],
                "version": version["version"],
                "number": r[0],
                "receipt": "0x" + r[1].hex(),
                "input_hash": "0x" + r[2].hex(),
                "output_hash": "0x" + r[3].hex(),
                "runner": address_hex(r[4]),
                "height": r[5],
                "charged": r[6],
            }
            for r in rows
        ]

    async def check(
        self,
        ref: ModelRef | str,
        number: int,
        inputs: Mapping[str, np.ndarray] | np.ndarray,
        *,
        path: Path | None = None,
    ) -> dict[str, Any]:
        """Re-run recorded inference `number` of a version on `inputs` and compare both digests with the
        receipt's: `inputs_match` says these are the inputs it recorded, `outputs_match` that this run
        gave the very tensors it recorded (bit for bit: only digests are on chain)."""
        version = await self.registry.version(ref)
        name, at = version["model"], version["version"]
        found = [r for r in await self.receipts(ModelRef(name, at), first=number, count=1) if r["number"] == number]
        if not found:
            raise ReceiptNotFound(
                f"{name}@{at} has no inference receipt #{number}: list them with "
                f"`aichain-node model receipts {name}@{at}`"
            )
        recorded = found[0]
        result = await self.run(ModelRef(name, at), inputs, path=path)
        inputs_match = "0x" + result.input_hash.hex() == recorded["input_hash"]
        outputs_match = "0x" + result.output_hash.hex() == recorded["output_hash"]
        return {
            **recorded,
            "inputs_match": inputs_match,
            "outputs_match": inputs_match and outputs_match,
            "rerun_input_hash": "0x" + result.input_hash.hex(),
            "rerun_output_hash": "0x" + result.output_hash.hex(),
            "outputs": result.outputs,
        }


__all__ = ["AsyncModelRuns", "Inference", "Pulled", "PullingClient", "Registry", "still_verified"]
