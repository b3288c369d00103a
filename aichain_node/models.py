"""Models on chain from the SDK: publish, look up, offer, buy, and the licences an account holds.

    async with AsyncClient(url, key) as node:
        published = await node.models.publish(Path("net.onnx"), "net", private=True,
                                              offer=Offer(price=10 * AIC))
        licence = await buyer.models.buy("net")

Pulling, verifying and running a model are done by an `aichain_node.runs.AsyncModelRuns` this
object holds (made at the first such call: it needs numpy) and passes the calls to; the lineage
views are `aichain_node.provenance`. Values come back as plain dicts with 0x-hex addresses and
`sha256:` ids, ready for JSON.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aichain_node.content_keys import load_content_key, save_content_key
from aichain_node.errors import ContractCallFailed, ModelNotFound, NoContentKey, NoOffer
from aichain_node.provenance import lineage_graph
from aichain_node.terms import ModelRef, Offer, TermsError
from aichain_node.transfer import local_id
from aichain_node.views import event_field, licence_view, offer_view, version_view
from core.account_encryption import encryption_public_key, seal_for
from core.artifact import format_id, parse_id
from core.keys import address_hex, parse_address
from core.sealing import new_content_key
from core.system_addresses import KEYS, LICENSING, MODELS

if TYPE_CHECKING:
    from collections.abc import Mapping

    import numpy as np

    from aichain_node.aclient import AsyncClient, Progress
    from aichain_node.runs import AsyncModelRuns, Inference, Pulled

AIC = 10**9
RELEASE_FUND = 1 * AIC  # what a publisher gives its node's releaser for the gas of posting envelopes
EVENT_SPAN = 10_000  # blocks per contract_getEvents call


@dataclass(frozen=True)
class Published:
    model: str
    version: int
    artifact: str  # sha256:…
    private: bool
    offer: int | None  # the offer's number, if one was made
    releaser: str | None  # the account that posts content-key envelopes for buyers (private models)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class AsyncModels:
    """The model registry and licensing, for the client's account."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self._versions: dict[tuple[str, int], dict[str, Any]] = {}
        self._runs: AsyncModelRuns | None = None

    # --- reading ------------------------------------------------------------------------------

    async def _view(self, contract: bytes, function: str, *args: Any) -> Any:
        return await self.client.view(contract, function, *args)

    async def info(self, name: str) -> dict[str, Any]:
        """Format, metadata id, owners with their shares, and the number of versions."""
        try:
            fmt, metadata, owners, count = await self._view(MODELS, "model_info", name)
        except ContractCallFailed as exc:
            raise ModelNotFound(f"no model named {name!r} is registered on this chain") from exc
        return {"model": name, "format": fmt, "metadata": "0x" + bytes(metadata).hex(),
                "owners": [{"address": address_hex(o[0]), "bps": o[1]} for o in owners], "versions": count}  # fmt: skip

    async def version(self, ref: ModelRef | str) -> dict[str, Any]:
        """One version (the latest if none is named): its artifact, parents, datasets, publisher, height.

        A published version never changes on chain, so each is asked for once per client."""
        ref = ModelRef.parse(ref) if isinstance(ref, str) else ref
        number = ref.version
        if number is None:
            number = (await self.info(ref.name))["versions"]
        known = self._versions.get((ref.name, number))
        if known is not None:
            return known
        try:
            raw = await self._view(MODELS, "version_info", ref.name, number)
        except ContractCallFailed as exc:
            raise ModelNotFound(f"{ref.name}@{number} is not on chain: {exc}") from exc
        found = self._versions[(ref.name, number)] = version_view(ref.name, number, raw)
        return found

    async def versions(self, name: str) -> list[dict[str, Any]]:
        count = (await self.info(name))["versions"]
        raws = await asyncio.gather(*(self._view(MODELS, "version_info", name, n) for n in range(1, count + 1)))
        return [version_view(name, n, raw) for n, raw in enumerate(raws, start=1)]

    async def offers(self, name: str) -> list[dict[str, Any]]:
        count = await self._view(LICENSING, "offer_count_of", name)
        raws = await asyncio.gather(*(self._view(LICENSING, "offer_info", name, n) for n in range(1, count + 1)))
        return [offer_view(name, n, raw) for n, raw in enumerate(raws, start=1)]

    async def licence(self, ref: ModelRef | str, who: bytes | None = None) -> dict[str, Any] | None:
        """The licence `who` (default: this account) holds to a version, or None."""
        version = await self.version(ref)
        who = who or self.client.address
        try:
            raw = await self._view(LICENSING, "licence_of", who, version["model"], version["version"])
        except ContractCallFailed:
            return None
        return licence_view(version["model"], version["version"], who, raw)

    async def is_owner(self, name: str) -> bool:
        """True if this account is one of the model's owners."""
        return address_hex(self.client.address) in {o["address"] for o in (await self.info(name))["owners"]}

    async def is_licensed(self, name: str, version: int, who: bytes | None = None) -> bool:
        return bool(await self._view(LICENSING, "is_licensed", who or self.client.address, name, version))

    async def licences(self, who: bytes | None = None) -> list[dict[str, Any]]:
        """Every licence an account (default: this one) has bought, as it stands now."""
        who = who or self.client.address
        seen: dict[tuple[str, int], None] = {}
        for event in await self.events(LICENSING, "Licensed"):
            fields = event["fields"]
            if parse_address(fields["licensee"]) == who:
                seen[(fields["model"], int(fields["version"]))] = None
        found = []
        for name, version in seen:
            raw = await self._view(LICENSING, "licence_of", who, name, version)
            found.append(licence_view(name, version, who, raw))
        return found

    async def events(self, contract: bytes, name: str) -> list[dict[str, Any]]:
        head = int((await self.client.head())["height"])
        found: list[dict[str, Any]] = []
        for first in range(1, head + 1, EVENT_SPAN):
            found += await self.client.rpc("contract_getEvents", address_hex(contract), first,
                                           min(first + EVENT_SPAN - 1, head), name)  # fmt: skip
        return found

    async def lineage(self, name: str) -> dict[str, Any]:
        """The provenance DAG of a model (aichain_node.provenance): versions, parents, datasets, owners, licences,
        receipts."""
        return await lineage_graph(self, name)

    # --- writing ------------------------------------------------------------------------------

    async def publish(
        self, source: Path, name: str, *, private: bool = False, parents: Sequence[str] = (),
        datasets: Sequence[str] = (), owners: Sequence[tuple[bytes, int]] | None = None, offer: Offer | None = None,
        format: str = "onnx", metadata: bytes = b"", release: bool = True, release_fund: int = RELEASE_FUND,
        progress: Progress | None = None,
    ) -> Published:  # fmt: skip
        """Store `source` (a file or a directory) on the node, encrypted if `private`, and register it as
        the next version of `name` (a new model if the name is free), with its parents and datasets.

        A private model's content key stays on the node it was stored on, for versions this account
        publishes (the upload names it); with `release`, that node's releaser account is named for the
        model and given `release_fund` for gas, so it posts each buyer's envelope when a licence is
        bought. With `offer`, licences are offered at once."""
        client = self.client
        links = [[r.name, r.version] for r in map(ModelRef.parse, parents)]
        if any(version is None for _, version in links):
            raise TermsError(f"parents name their version: {list(parents)} (e.g. base@1)")
        content_key = artifact_id = None
        if private:  # the key is made here and kept here too, so the owners can post envelopes themselves
            artifact_id = await asyncio.to_thread(local_id, source)
            content_key = new_content_key()
            await asyncio.to_thread(save_content_key, client.content_key_dir, artifact_id, content_key)
        publisher = client.address if private else None  # the node keeps the key for versions this account publishes
        stored = await client.upload(source, encrypt=private, progress=progress, content_key=content_key,
                                     artifact_id=artifact_id, publisher=publisher)  # fmt: skip
        artifact = bytes.fromhex(stored["id"].removeprefix("sha256:"))
        trained_on = [bytes.fromhex(d.removeprefix("sha256:")) for d in datasets]
        try:
            await self._view(MODELS, "model_info", name)
            receipt = await client.send(MODELS, "publish_version", name, artifact, links, trained_on)
        except ContractCallFailed:  # a new model
            shares = [[who, bps] for who, bps in (owners or [(client.address, 10_000)])]
            receipt = await client.send(MODELS, "register_derived", name, artifact, format, metadata, shares, links,
                                        trained_on)  # fmt: skip
        version = int(event_field(receipt, "VersionPublished", "version"))
        sends = []
        releaser = None
        if private and release:
            releaser = await self.node_releaser()
            if releaser is not None:
                if await self._view(KEYS, "releaser_of", name) != releaser:
                    sends.append(client.send(KEYS, "set_releaser", name, releaser, wait=False))
                if await client.balance(releaser) < release_fund // 2:
                    sends.append(client.transfer(releaser, release_fund, wait=False))
        if offer is not None:
            sends.append(client.send(LICENSING, "make_offer", name, version, offer.price, offer.duration_s,
                                     offer.per_use_price, offer.max_licensees, list(offer.allow),
                                     offer.upstream_bps, wait=False))  # fmt: skip
        sent = [await s for s in sends]  # in order: nonces follow each other
        receipts = [await client.wait_ok(s["tx_hash"]) for s in sent]
        offer_number = int(event_field(receipts[-1], "OfferMade", "offer")) if offer is not None else None
        return Published(name, version, format_id(artifact), private, offer_number,
                         None if releaser is None else address_hex(releaser))  # fmt: skip

    async def releaser(self, name: str) -> str | None:
        """The account named to post the model's content-key envelopes besides its owners, if any."""
        releaser = bytes(await self._view(KEYS, "releaser_of", name) or b"")
        return None if not releaser or releaser == bytes(20) else address_hex(releaser)

    async def register_dataset(self, dataset: str, *, terms: str = "",
                               owners: Sequence[tuple[bytes, int]] | None = None) -> dict[str, Any]:  # fmt: skip
        """Register a dataset (an artifact id, `sha256:…`) so versions can name it in `datasets`."""
        shares = [[who, bps] for who, bps in (owners or [(self.client.address, 10_000)])]
        return await self.client.send(MODELS, "register_dataset", parse_id(dataset), shares, terms)

    async def release(self, ref: ModelRef | str, licensees: Sequence[bytes] | None = None) -> list[str]:
        """Post, as an owner, the envelope of each licensee of a private version (default: every buyer
        on record) that holds a valid licence and a published key but no envelope sealed to that key yet
        (one was, if the node's releaser served it); who was served.

        Needs the content key this machine kept when it published the version (`content_keys`)."""
        version = await self.version(ref)
        name, number = version["model"], version["version"]
        artifact = parse_id(version["artifact"])
        content_key = await asyncio.to_thread(load_content_key, self.client.content_key_dir, artifact)
        if content_key is None:
            raise NoContentKey(f"this machine keeps no content key for {name}@{number} ({version['artifact']}): it "
                               "was published elsewhere; release from there, or let the node that stores it "
                               "release keys ([models] release_keys = true)")  # fmt: skip
        if licensees is None:
            licensees = [parse_address(e["fields"]["licensee"]) for e in await self.events(LICENSING, "Licensed")
                         if e["fields"]["model"] == name and int(e["fields"]["version"]) == number]  # fmt: skip
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
        version = await self.version(ref)
        receipt = await self.client.send(LICENSING, "make_offer", version["model"], version["version"], offer.price,
                                         offer.duration_s, offer.per_use_price, offer.max_licensees,
                                         list(offer.allow), offer.upstream_bps)  # fmt: skip
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
        version = await self.version(ref)
        name, number = version["model"], version["version"]
        me = address_hex(self.client.address)
        candidates = [o for o in await self.offers(name) if o["version"] == number and o["open"]
                      and (not o["allow"] or me in o["allow"])
                      and (o["max_licensees"] == 0 or o["licensees"] < o["max_licensees"])]  # fmt: skip
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

    # --- pulling, verifying, running (aichain_node.runs) --------------------------------------

    @property
    def runs(self) -> AsyncModelRuns:
        """The part that pulls, verifies and runs versions, made at its first use (it needs numpy)."""
        if self._runs is None:
            from aichain_node.runs import AsyncModelRuns

            self._runs = AsyncModelRuns(self.client, self)
        return self._runs

    @property
    def release_wait_s(self) -> float:
        """How long a licensee's pull waits for the owner's node to post its envelope (`runs.content_key`)."""
        return self.runs.release_wait_s

    @release_wait_s.setter
    def release_wait_s(self, seconds: float) -> None:
        self.runs.release_wait_s = seconds

    def cache_path(self, name: str, version: int, directory: bool) -> Path:
        """Where a pulled version is kept: under the client's `model_cache_dir`."""
        return self.runs.cache_path(name, version, directory)

    async def pull(
        self, ref: ModelRef | str, dest: Path | None = None, *, progress: Progress | None = None,
        fetch_progress: Progress | None = None, refresh: bool = False,
    ) -> Pulled:  # fmt: skip
        """Fetch a version, check it against the chain, decrypt it here (`AsyncModelRuns.pull`)."""
        return await self.runs.pull(ref, dest, progress=progress, fetch_progress=fetch_progress, refresh=refresh)

    async def verify(self, path: Path, ref: ModelRef | str) -> dict[str, Any]:
        """Hash a local copy and compare it with the version's artifact id on chain (`AsyncModelRuns.verify`)."""
        return await self.runs.verify(path, ref)

    async def content_key(self, name: str, version: int, artifact: bytes, *, wait_s: float | None = None) -> bytes:
        """This account's content key for a private version (`AsyncModelRuns.content_key`)."""
        return await self.runs.content_key(name, version, artifact, wait_s=wait_s)

    async def run(
        self, ref: ModelRef | str, inputs: Mapping[str, np.ndarray] | np.ndarray, *, record: bool = False,
        path: Path | None = None,
    ) -> Inference:  # fmt: skip
        """Run a verified version on numpy inputs, recording the receipt with `record` (`AsyncModelRuns.run`)."""
        return await self.runs.run(ref, inputs, record=record, path=path)

    async def record(self, name: str, version: int, input_hash: bytes, output_hash: bytes) -> dict[str, Any]:
        """Put an inference receipt on chain (`AsyncModelRuns.record`)."""
        return await self.runs.record(name, version, input_hash, output_hash)

    async def receipts(self, ref: ModelRef | str, *, first: int = 1, count: int = 256) -> list[dict[str, Any]]:
        """The inference receipts of a version, oldest first (`AsyncModelRuns.receipts`)."""
        return await self.runs.receipts(ref, first=first, count=count)

    async def check(
        self, ref: ModelRef | str, number: int, inputs: Mapping[str, np.ndarray] | np.ndarray, *,
        path: Path | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Re-run recorded inference `number` and compare its digests (`AsyncModelRuns.check`)."""
        return await self.runs.check(ref, number, inputs, path=path)


__all__ = ["AIC", "AsyncModels", "Published"]
