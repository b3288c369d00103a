"""Whether this account may read a private model version, and the content key it reads it with.

An owner's key is the one the machine that published the version kept (`aichain_node.content_keys`);
a licensee's is sealed to its account's key in an envelope on chain, which the owner's node (or an
owner) posts once the licence is bought. Neither is handed out without a valid licence: the
envelope outlives the licence it was posted for.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, Protocol

from aichain_node.content_keys import load_content_key
from aichain_node.errors import KeyNotReleased, NotLicensed
from aichain_node.terms import ModelRef
from core.account_encryption import open_for
from core.keys import PrivateKey, address_hex
from core.sealing import EnvelopeInvalid
from core.system_addresses import KEYS

RELEASE_WAIT_S = 30.0  # how long a licensee waits for the owner's node to post its envelope
LICENCE_RECHECK_S = 10.0  # a licence seen valid is asked for again after this (or at its expiry, if sooner)


class Account(Protocol):
    """The client's account as access needs it (`AsyncClient`): its address and key, where it keeps
    content keys, and read-only contract calls."""

    @property
    def address(self) -> bytes: ...
    @property
    def content_key_dir(self) -> Path: ...
    def key_or_fail(self) -> PrivateKey: ...
    async def view(self, contract: bytes, function: str, *args: Any) -> Any: ...


class Licences(Protocol):
    """Owners and licences on chain (`aichain_node.models.AsyncModels`)."""

    async def licence(self, ref: ModelRef | str, who: bytes | None = None) -> dict[str, Any] | None: ...
    async def is_licensed(self, name: str, version: int, who: bytes | None = None) -> bool: ...
    async def is_owner(self, name: str) -> bool: ...
    async def why_not_licensed(self, ref: ModelRef | str, who: bytes | None = None) -> str: ...


class ModelAccess:
    """The licence checks and content keys of private versions, for `client`'s account."""

    def __init__(self, client: Account, registry: Licences) -> None:
        self.client = client
        self.registry = registry
        self.release_wait_s = RELEASE_WAIT_S
        self._licensed_until: dict[tuple[str, int], float] = {}  # monotonic time a valid licence is trusted to

    async def kept_key(self, name: str, artifact: bytes) -> bytes | None:
        """The content key this machine kept when it published the artifact, if this account owns the model."""
        # Usually none: only the machine a version was published from keeps its key.
        kept = await asyncio.to_thread(load_content_key, self.client.content_key_dir, artifact)
        return kept if kept is not None and await self.registry.is_owner(name) else None

    async def content_key(self, name: str, version: int, artifact: bytes, *, wait_s: float | None = None) -> bytes:
        """This account's content key for a private version: for an owner, the one this machine kept when
        it published it; else the one in its envelope on chain (waiting up to `wait_s`, default
        `release_wait_s`, for the owner's node to post it)."""
        wait_s = self.release_wait_s if wait_s is None else wait_s
        me = self.client.address
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        await self.require_licence(name, version)  # an envelope outlives its licence; the key is for licensees
        kept = await self.kept_key(name, artifact)
        if kept is not None:
            return kept
        while True:
            envelope = bytes(await self.client.view(KEYS, "envelope_for", name, version, me) or b"")
            if envelope:
                try:
                    return open_for(envelope, artifact, self.client.key_or_fail())
                except EnvelopeInvalid as exc:
                    raise NotLicensed(
                        f"the envelope on chain for {address_hex(me)} does not open with this account's key: {exc}"
                    ) from None
            await self.require_licence(name, version)
            if loop.time() >= deadline:
                raise KeyNotReleased(
                    f"{address_hex(me)} is licensed for {name}@{version}, but no content key has "
                    f"been released to it after {wait_s:.0f} s: the owner's node may be offline or "
                    "release no keys; ask the owner to post your envelope"
                )
            await asyncio.sleep(0.5)

    async def require_licence(self, name: str, version: int) -> None:
        """NotLicensed unless this account holds a valid licence to the version.

        A licence seen valid is trusted for `LICENCE_RECHECK_S`, never past its expiry, so
        repeated runs of a private model do not each wait for the chain."""
        if time.monotonic() < self._licensed_until.get((name, version), 0.0):
            return
        me = self.client.address
        # is_licensed is the rule (owners need no licence); the licence, if any, tells until when.
        licensed, licence = await asyncio.gather(
            self.registry.is_licensed(name, version, me), self.registry.licence(ModelRef(name, version), me)
        )
        if licensed:
            trusted_for = LICENCE_RECHECK_S
            if licence is not None and licence["valid"] and licence["expires_ms"]:  # block time, close to this clock
                trusted_for = min(trusted_for, licence["expires_ms"] / 1000 - time.time())
            self._licensed_until[(name, version)] = time.monotonic() + trusted_for
        else:
            self._licensed_until.pop((name, version), None)
            raise NotLicensed(
                await self.registry.why_not_licensed(ModelRef(name, version), me)
                + "; without a valid licence there is no key to decrypt it"
            )


__all__ = ["LICENCE_RECHECK_S", "RELEASE_WAIT_S", "Account", "Licences", "ModelAccess"]
