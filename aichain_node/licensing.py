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
from aichain_node.errors import (
    AlreadyLicensed,
    ContractCallFailed,
    DepositLocked,
    NoContentKey,
    NoOffer,
    NotLicensed,
    NotMetered,
)
from aichain_node.licence_advice import may_take, when, why_not
from aichain_node.terms import ModelRef, Offer
from aichain_node.views import event_field, licence_view, offer_view
from core.account_encryption import encryption_public_key, seal_for
from core.artifact import parse_id
from core.keys import PrivateKey, address_hex, parse_address
from core.system_addresses import KEYS, LICENSING
from core.units import format_amount

# The licensing contract's notice period: a deposit is taken back a day after its licence ends.
NOTICE_MS = 86_400_000


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

    async def withdraw_offer(self, name: str, offer: int) -> dict[str, Any]:
        """Sell no more licences under `offer` (an owner's call); licences sold stay as they are."""
        if not any(o["offer"] == offer for o in await self.offers(name)):
            raise NoOffer(f"{name} has no offer {offer}: see `aichain-node model info {name}`")
        return await self.client.send(LICENSING, "withdraw_offer", name, offer)

    async def _held(self, ref: ModelRef | str) -> tuple[str, int, dict[str, Any]]:
        """(model, version, this account's licence to it); NotLicensed if it holds none."""
        version = await self.registry.version(ref)
        name, number = version["model"], version["version"]
        licence = await self.licence(ModelRef(name, number))
        if licence is None:
            raise NotLicensed(await self.why_not_licensed(ModelRef(name, number)))
        return name, number, licence

    async def top_up(self, ref: ModelRef | str, amount: int) -> dict[str, Any]:
        """Add `amount` to the per-use deposit of this account's licence; the licence as it stands after."""
        name, number, licence = await self._held(ref)
        terms = next(o for o in await self.offers(name) if o["offer"] == licence["offer"])
        if terms["per_use_price"] == 0:
            raise NotMetered(
                f"the licence to {name}@{number} (offer {licence['offer']}) is not metered per use: it has no deposit"
            )
        await self.client.send(LICENSING, "top_up", name, number, value=amount)
        return await self._licence_or_fail(name, number)

    async def end_licence(self, ref: ModelRef | str) -> dict[str, Any]:
        """End this account's licence now; what is left of its deposit can be withdrawn a day later."""
        name, number, _ = await self._held(ref)
        await self.client.send(LICENSING, "end_licence", name, number)
        return await self._licence_or_fail(name, number)

    async def withdraw_deposit(self, ref: ModelRef | str) -> int:
        """Take back what is left of this account's deposit, a day after its licence ended; the amount."""
        name, number, licence = await self._held(ref)
        head_ms = int((await self.client.rpc("chain_head"))["timestamp_ms"])
        if licence["expires_ms"] == 0 or licence["expires_ms"] > head_ms:
            raise DepositLocked(
                f"the licence to {name}@{number} is still running: end it with `aichain-node licence end "
                f"{name}@{number}`, then withdraw its deposit a day later"
            )
        if head_ms < licence["expires_ms"] + NOTICE_MS:
            raise DepositLocked(
                f"the licence to {name}@{number} ended at {when(licence['expires_ms'])}; its deposit can be "
                f"withdrawn from {when(licence['expires_ms'] + NOTICE_MS)} (the owners may still charge "
                "uses until then)"
            )
        await self.client.send(LICENSING, "withdraw_deposit", name, number)
        # The contract refunds all the escrow holds: what it held when asked, unless a usage receipt the
        # owners submitted landed first (it has no event to read the amount back from).
        return int(licence["deposit"])

    async def why_not_licensed(self, ref: ModelRef | str, who: bytes | None = None) -> str:
        """Why `who` (default: this account) may not use a version, and the step that helps."""
        version = await self.registry.version(ref)
        name, number = version["model"], version["version"]
        who = who or self.client.address
        licence, offers, head = await asyncio.gather(
            self.licence(ModelRef(name, number), who), self.offers(name), self.client.rpc("chain_head")
        )
        return why_not(name, number, address_hex(who), licence, offers, int(head["timestamp_ms"]))

    async def _licence_or_fail(self, name: str, number: int) -> dict[str, Any]:
        licence = await self.licence(ModelRef(name, number))
        assert licence is not None  # a licence once bought is never deleted
        return licence

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
        held, head = await asyncio.gather(self.licence(ModelRef(name, number)), self.client.rpc("chain_head"))
        head_ms = int(head["timestamp_ms"])
        # A licence still running may only be extended under its own offer, which need not be full.
        extending = held is not None and (held["expires_ms"] == 0 or held["expires_ms"] > head_ms)
        candidates = [
            o
            for o in await self.offers(name)
            if o["version"] == number
            and (may_take(o, me) or (extending and held is not None and o["offer"] == held["offer"] and o["open"]))
        ]
        if offer is not None:
            candidates = [o for o in candidates if o["offer"] == offer]
        elif extending and held is not None and any(o["offer"] == held["offer"] for o in candidates):
            candidates = [o for o in candidates if o["offer"] == held["offer"]]
        if not candidates:
            which = f"offer {offer}" if offer is not None else "open offer"
            raise NoOffer(f"{name}@{number} has no {which} that {me} may take: see `aichain-node model info {name}`")
        chosen = min(candidates, key=lambda o: (o["price"], o["offer"]))
        if held is not None and extending:
            self._check_extension(name, number, held, chosen)
        if chosen["per_use_price"] > 0 and deposit == 0:
            deposit = chosen["per_use_price"] * 10
        await self.publish_encryption_key()
        await self.client.send(LICENSING, "buy", name, chosen["offer"], value=chosen["price"] + deposit)
        licence = await self.licence(ModelRef(name, number))
        assert licence is not None
        return licence | {"price": chosen["price"], "deposit_sent": deposit}

    @staticmethod
    def _check_extension(name: str, number: int, held: dict[str, Any], chosen: dict[str, Any]) -> None:
        """The licensing contract's rule for buying while a licence runs, asked before paying gas for a refusal."""
        ref = f"{name}@{number}"
        if held["offer"] != chosen["offer"]:
            until = "never ends" if held["expires_ms"] == 0 else f"runs until {when(held['expires_ms'])}"
            raise AlreadyLicensed(
                f"you hold a licence to {ref} under offer {held['offer']} that {until}: buy under another offer "
                f"after it ends (`aichain-node licence end {ref}` ends it now)"
            )
        if held["expires_ms"] == 0:
            more = (
                f"; add to its per-use deposit with `aichain-node licence top-up {ref} --deposit AMOUNT`"
                if chosen["per_use_price"]
                else ""
            )
            raise AlreadyLicensed(
                f"you hold a licence to {ref} under offer {held['offer']} that never expires: buying again "
                f"would charge {format_amount(chosen['price'])} for nothing{more}"
            )


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
