"""Licences from the SDK: offers, purchases, the licences an account holds, and the content keys of
private versions released to licensees.

    async with AsyncClient(url, key) as node:
        offer = await node.models.make_offer("net@1", Offer(price=10 * AIC))
        licence = await buyer.models.buy("net@1")

A buyer publishes its account's encryption key before it buys; the content key of a private
version is then sealed to that key in an envelope on chain, posted by the node the model's owners
named as its releaser or by an owner (`release`). `client.models` holds an `AsyncLicensing` and
offers its calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from aichain_node.content_keys import load_content_key
from aichain_node.errors import ContractCallFailed, NoContentKey, NoOffer
from aichain_node.terms import ModelRef, Offer
from aichain_node.views import event_field, licence_view, offer_view
from core.account_encryption import encryption_public_key, seal_for
from core.artifact import parse_id
from core.keys import PrivateKey, address_hex, parse_address
from core.system_addresses import KEYS, LICENSING


class LicensingClient(Protocol):
    """What licensing needs of the client (`AsyncClient`): its account, where it keeps content keys,
    contract calls and transactions, and the node's status."""

    @property
    def address(self) -> bytes: ...
    @property
    def content_key_dir(self) -> Path: ...
    def key_or_fail(self) -> PrivateKey: ...
    async def rpc(self, method: str, *params: Any) -> Any: ...
    async def view(self, contract: bytes, function: str, *args: Any) -> Any: ...
    async def send(
        self, contract: bytes, function: str, *args: Any, value: int = 0, wait: bool = True
    ) -> dict[str, Any]: ...
    async def wait_ok(self, tx_hash: str) -> dict[str, Any]: ...


class Versions(Protocol):
    """The model registry as licensing reads it (`aichain_node.models.AsyncModels`)."""

    async def version(self, ref: ModelRef | str) -> dict[str, Any]: ...
    async def events(self, contract: bytes, name: str) -> list[dict[str, Any]]: ...


class AsyncLicensing:
    """Offers, licences and content-key envelopes (the licensing and keys contracts), for the client's
    account; what a version is is asked of `registry`."""

    def __init__(self, client: LicensingClient, registry: Versions) -> None:
        self.client = client
        self.registry = registry

    async def _view(self, contract: bytes, function: str, *args: Any) -> Any:
        return await self.client.view(contract, function, *args)

    async def offers(self, name: str) -> list[dict[str, Any]]:
        count = await self._view(LICENSING, "offer_count_of", name)
        raws = await asyncio.gather(*(self._view(LICENSING, "offer_info", name, n) for n in range(1, count + 1)))
        return [offer_view(name, n, raw) for n, raw in enumerate(raws, start=1)]

    async def licence(self, ref: ModelRef | str, who: bytes | None = None) -> dict[str, Any] | None:
        """The licence `who` (default: this account) holds to a version, or None."""
        version = await self.registry.version(ref)
        who = who or self.client.address
        try:
            raw = await self._view(LICENSING, "licence_of", who, version["model"], version["version"])
        except ContractCallFailed:
            return None
        return licence_view(version["model"], version["version"], who, raw)

    async def is_licensed(self, name: str, version: int, who: bytes | None = None) -> bool:
        return bool(await self._view(LICENSING, "is_licensed", who or self.client.address, name, version))

    async def licences(self, who: bytes | None = None) -> list[dict[str, Any]]:
        """Every licence an account (default: this one) has bought, as it stands now."""
        who = who or self.client.address
        seen: dict[tuple[str, int], None] = {}
        for event in await self.registry.events(LICENSING, "Licensed"):
            fields = event["fields"]
            if parse_address(fields["licensee"]) == who:
                seen[(fields["model"], int(fields["version"]))] = None
        found = []
        for name, version in seen:
            raw = await self._view(LICENSING, "licence_of", who, name, version)
            found.append(licence_view(name, version, who, raw))
        return found

    async def releaser(self, name: str) -> str | None:
        """The account named to post the model's content-key envelopes besides its owners, if any."""
        releaser = bytes(await self._view(KEYS, "releaser_of", name) or b"")
        return None if not releaser or releaser == bytes(20) else address_hex(releaser)

    async def release(self, ref: ModelRef | str, licensees: Sequence[bytes] | None = None) -> list[str]:
        """Post, as an owner, the envelope of each licensee of a private version (default: every buyer
        on record) that holds a valid licence and a published key but no envelope sealed to that key yet
        (one was, if the node's releaser served it); who was served.

        Needs the content key this machine kept when it published the version (`content_keys`)."""
        version = await self.registry.version(ref)
        name, number = version["model"], version["version"]
        artifact = parse_id(version["artifact"])
        content_key = await asyncio.to_thread(load_content_key, self.client.content_key_dir, artifact)
        if content_key is None:
            raise NoContentKey(
                f"this machine keeps no content key for {name}@{number} ({version['artifact']}): it "
                "was published elsewhere; release from there, or let the node that stores it "
                "release keys ([models] release_keys = true)"
            )
        if licensees is None:
            bought = await self.registry.events(LICENSING, "Licensed")
            licensees = [
                parse_address(e["fields"]["licensee"])
                for e in bought
                if e["fields"]["model"] == name and int(e["fields"]["version"]) == number
            ]
        sent, served = [], []
        for who in dict.fromkeys(licensees):  # the contract's rules, asked first: no transaction it would refuse
            public = bytes(await self._view(KEYS, "key_of", who) or b"")
            if not public or bytes(await self._view(KEYS, "sealed_key_of", name, number, who) or b"") == public:
                continue  # no key to seal to, or an envelope sealed to this key is posted already
            if not await self.is_licensed(name, number, who):
                continue
            envelope = seal_for(content_key, artifact, public)
            sent.append(await self.client.send(KEYS, "post_envelope", name, number, who, envelope, wait=False))
            served.append(address_hex(who))
        for tx in sent:
            await self.client.wait_ok(tx["tx_hash"])
        return served

    async def node_releaser(self) -> bytes | None:
        """The account the node uses to post content-key envelopes, or None if it releases no keys."""
        releaser = (await self.client.rpc("node_status")).get("releaser")
        return None if releaser is None else parse_address(releaser)

    async def make_offer(self, ref: ModelRef | str, offer: Offer) -> int:
        version = await self.registry.version(ref)
        args = offer_args(version["model"], version["version"], offer)
        receipt = await self.client.send(LICENSING, "make_offer", *args)
        return int(event_field(receipt, "OfferMade", "offer"))

    async def publish_encryption_key(self) -> bool:
        """Publish this account's X25519 key (derived from its signing key) unless it is on chain; True if sent."""
        public = encryption_public_key(self.client.key_or_fail())
        if bytes(await self._view(KEYS, "key_of", self.client.address) or b"") == public:
            return False
        await self.client.send(KEYS, "publish_key", public)
        return True

    async def buy(self, ref: ModelRef | str, *, offer: int | None = None, deposit: int = 0) -> dict[str, Any]:
        """Buy a licence to a version (the latest if none is named) under `offer` (default: the cheapest
        open offer for that version you may take), sending its price plus `deposit` for per-use charges.

        Publishes this account's encryption key first, so the owner's node can seal the content key to it."""
        version = await self.registry.version(ref)
        name, number = version["model"], version["version"]
        me = address_hex(self.client.address)
        candidates = [
            o
            for o in await self.offers(name)
            if o["version"] == number
            and o["open"]
            and (not o["allow"] or me in o["allow"])
            and (o["max_licensees"] == 0 or o["licensees"] < o["max_licensees"])
        ]
        if offer is not None:
            candidates = [o for o in candidates if o["offer"] == offer]
        if not candidates:
            which = f"offer {offer}" if offer is not None else "open offer"
            raise NoOffer(f"{name}@{number} has no {which} that {me} may take: see `aichain-node model info {name}`")
        chosen = min(candidates, key=lambda o: (o["price"], o["offer"]))
        if chosen["per_use_price"] > 0 and deposit == 0:
            deposit = chosen["per_use_price"] * 10
        await self.publish_encryption_key()
        await self.client.send(LICENSING, "buy", name, chosen["offer"], value=chosen["price"] + deposit)
        licence = await self.licence(ModelRef(name, number))
        assert licence is not None
        return licence | {"price": chosen["price"], "deposit_sent": deposit}


def offer_args(name: str, version: int, offer: Offer) -> list[Any]:
    """The arguments of the licensing contract's `make_offer` that offer `offer` for a version."""
    return [
        name,
        version,
        offer.price,
        offer.duration_s,
        offer.per_use_price,
        offer.max_licensees,
        list(offer.allow),
        offer.upstream_bps,
    ]


__all__ = ["AsyncLicensing", "LicensingClient", "Versions", "offer_args"]
