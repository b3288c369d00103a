"""Who may read the plaintext of a private artifact from this node: decided per request, against the chain.

A node that keeps a private artifact's content key can decrypt it, and so could serve its
plaintext. It does so only for a request signed by an account that may read it
(`core.read_request`: `Authorization: AichainRead …`), checked in this order:

1. the header is well formed, its timestamp within `WINDOW_MS` of this node's clock, and its
   signature verifies for this chain, this artifact, this method, path and Range;
2. it was signed for this node: its audience is this node's key (the one `node_status` reports as
   `node_key`). A read is served by the node it was sent to or not at all, so a node that is sent
   one (any RPC node a user points a client at) cannot replay it to the node that keeps the key;
3. its nonce was not used by that account within the window (a bounded replay cache,
   `node.artifacts.replay_cache`, in which an account that floods crowds out only itself);
4. at the head: the version it names (`model@version`) exists and its artifact is this one;
5. that version was published by the account this node keeps the content key for (the uploader
   names it in `X-Content-Publisher` with the encrypted upload). Anyone may register a model
   naming someone else's artifact id, since ids are public; without this check, owning such a
   copy would unlock the bytes;
6. the signer holds a valid licence to the version or owns the model (`is_licensed`, at the
   head, with the block time no earlier than this node's clock, so a licence that has expired
   is not honoured while the chain is idle).

An unsigned or badly signed request gets 401, a signed one that may not read here gets 403, each with
a JSON body saying what is needed. Ciphertext (`/stored`) stays public. The node's key release
(`node.artifacts.key_release`) asks the same publisher question before sealing a key to anyone.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.artifact import Manifest, format_id
from core.errors import AichainError
from core.keys import ADDRESS_SIZE, address_hex, parse_address
from core.read_request import SCHEME, WINDOW_MS, ReadRequestInvalid, SignedRead, parse_read
from core.system_addresses import LICENSING, MODELS
from node.artifacts.replay_cache import ReplayCache

PUBLISHER_HEADER = "X-Content-Publisher"

View = Callable[..., Any]  # view(contract, function, *args, time_ms=...) -> result, at the head; raises on failure


class AccessDenied(AichainError):
    """This request may not have the plaintext; `status` is the HTTP answer (401, 403 or 429)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Grant:
    account: bytes
    model: str
    version: int


class PublisherBindings:
    """artifact id -> the account that publishes the versions this node keeps its content key for.

    One small file per artifact under `root` (0700; files 0600, written whole): the first binding
    stays, since whoever uploads the same plaintext again already knows it and must not take over
    its release."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, artifact: bytes) -> Path:
        return self.root / artifact.hex()

    def publisher_of(self, artifact: bytes) -> bytes | None:
        try:
            raw = self._path(artifact).read_bytes()
        except FileNotFoundError:
            return None
        return raw if len(raw) == ADDRESS_SIZE else None

    def bind(self, artifact: bytes, publisher: bytes) -> bytes:
        """Record `publisher` for `artifact` unless one is recorded already; the one that holds."""
        known = self.publisher_of(artifact)
        if known is not None:
            return known
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self._path(artifact)
        part = path.with_name(f"{path.name}.part-{os.getpid()}")
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, publisher)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(part, path)
        return publisher


def publisher_header(value: str | None) -> bytes | None:
    """The address in an `X-Content-Publisher` header (None without one); ValueError if it is not one."""
    if value is None or not value.strip():
        return None
    try:
        return parse_address(value.strip())
    except AichainError as exc:
        raise ValueError(f"{PUBLISHER_HEADER}: {exc}") from None


class ArtifactAccess:
    """Decides whether a request may have a private artifact's plaintext (see the module's docstring)."""

    def __init__(
        self,
        chain_id: int,
        node_key: bytes,
        view: View,
        bindings: PublisherBindings,
        *,
        clock: Callable[[], float] = time.time,
        window_ms: int = WINDOW_MS,
    ) -> None:
        self.chain_id = chain_id
        self.node_key = node_key  # this node's public node key: the audience of the reads it serves
        self.view = view
        self.bindings = bindings
        self.clock = clock
        self.window_ms = window_ms
        self.replays = ReplayCache()
        self.granted = 0
        self.refused = 0

    def authorize(
        self, manifest: Manifest, method: str, path: str, range_header: str, authorization: str | None
    ) -> Grant:
        """The grant for this request of `manifest`'s plaintext, or AccessDenied saying what is needed.

        Runs on the event loop, all at once (no await between the replay check and recording the
        nonce): one signature check and three small contract views."""
        try:
            grant = self._authorize(manifest, method, path, range_header, authorization)
        except AccessDenied:
            self.refused += 1
            raise
        self.granted += 1
        return grant

    def counts(self) -> dict[str, int]:
        """What /metrics shows of the private reads: granted and refused."""
        return {"granted": self.granted, "refused": self.refused}

    def _authorize(
        self, manifest: Manifest, method: str, path: str, range_header: str, authorization: str | None
    ) -> Grant:
        artifact = manifest.artifact_id
        if not authorization:
            raise AccessDenied(
                401,
                f"{artifact} is private: its plaintext is served only to a request signed by an "
                f"owner's or a licensee's account key (`aichain-node artifact get {artifact} "
                "--from KEY`, or the SDK's signed download; header `Authorization: "
                f"{SCHEME} …`, see docs/rpc.md). Without a licence, buy one: `aichain-node "
                f"licence buy MODEL@VERSION`. Its ciphertext is public at "
                f"/artifacts/{artifact}/stored",
            )
        try:
            signed = parse_read(authorization, manifest.id, method, path, range_header)
        except ReadRequestInvalid as exc:
            raise AccessDenied(401, f"{exc}; sign each request with `core.read_request.sign_read`") from None
        now_ms = int(self.clock() * 1000)
        request = signed.request
        if abs(now_ms - request.timestamp_ms) > self.window_ms:
            off = now_ms - request.timestamp_ms
            raise AccessDenied(
                401,
                f"the signed read is dated {request.timestamp_ms} ms, {off} ms from this node's "
                f"clock (at most {self.window_ms} ms either way): sign each request when you "
                "send it, and check your clock",
            )
        if not signed.verifies(self.chain_id):
            raise AccessDenied(
                401,
                f"the signature does not verify for this request: it must cover chain "
                f"{self.chain_id}, the node it names, {artifact}, the model version it names, "
                f"the method ({method}), the path ({path}) and the Range header; sign each "
                "request anew",
            )
        if request.audience != self.node_key:
            raise AccessDenied(
                403,
                f"this signed read is for node 0x{request.audience.hex()}, and this is node "
                f"0x{self.node_key.hex()}: a node serves only reads signed for itself, so a "
                "node that was sent a read cannot replay it to another. Sign it for this node "
                "(its node key is `node_key` in node_status), as the SDK and `artifact get "
                "--from` do",
            )
        account = signed.account
        expires_ms = request.timestamp_ms + self.window_ms
        if self.replays.seen(account, request.nonce, now_ms):
            raise AccessDenied(401, "this signed read was used already (its nonce is spent): sign each request anew")
        if self.replays.below_floor(account, expires_ms):
            raise AccessDenied(
                429,
                f"{address_hex(account)} made so many signed reads within {self.window_ms // 1000} "
                "s that this node forgot the nonces of the oldest, and this read is dated no "
                "later than those: sign it anew",
            )
        if not self.replays.room_for(account):
            raise AccessDenied(
                429,
                f"too many signed reads by {address_hex(account)} within {self.window_ms // 1000} s; try again shortly",
            )
        self._check_chain(signed, manifest, now_ms)
        self.replays.add(account, request.nonce, expires_ms)
        return Grant(account, request.model, request.version)

    def _check_chain(self, signed: SignedRead, manifest: Manifest, now_ms: int) -> None:
        request, artifact = signed.request, manifest.artifact_id
        ref = f"{request.model}@{request.version}"
        try:
            version = self.view(MODELS, "version_info", request.model, request.version, time_ms=now_ms)
        except AichainError as exc:
            raise AccessDenied(403, f"{ref} is not on chain ({exc})") from None
        named, publisher = bytes(version[0]), bytes(version[3])
        if named != manifest.id:
            raise AccessDenied(
                403, f"{ref} is {format_id(named)}, not {artifact}: name the version that publishes these bytes"
            )
        bound = self.bindings.publisher_of(manifest.id)
        if bound is None:
            raise AccessDenied(
                403,
                f"this node keeps the content key of {artifact} without a publisher (it was "
                f"uploaded without {PUBLISHER_HEADER}), so it serves its plaintext to no one; "
                "a licensee decrypts its ciphertext with the key in its envelope",
            )
        if bound != publisher:
            raise AccessDenied(
                403,
                f"{ref} was published by {address_hex(publisher)}, but this node keeps the key of "
                f"{artifact} for versions published by {address_hex(bound)}: {ref} names bytes "
                "its publisher did not upload here, and gives no access to them",
            )
        account = signed.account
        if not self.view(LICENSING, "is_licensed", account, request.model, request.version, time_ms=now_ms):
            raise AccessDenied(
                403,
                f"{address_hex(account)} holds no valid licence to {ref} and does not own it: "
                f"buy one with `aichain-node licence buy {ref} --from KEY`",
            )


__all__ = ["PUBLISHER_HEADER", "AccessDenied", "ArtifactAccess", "Grant", "PublisherBindings", "publisher_header"]
