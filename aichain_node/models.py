"""Models on chain from the SDK (`client.models`): publish, look up, offer, buy, pull and run.

    async with AsyncClient(url, key) as node:
        published = await node.models.publish(Path("net.onnx"), "net", private=True,
                                              offer=Offer(price=10 * AIC))
        licence = await buyer.models.buy("net")

The registry (models, versions, datasets) is read and written here; publishing a version is
`aichain_node.publishing`. Offers, licences and the
release of content keys are done by an `aichain_node.licensing.AsyncLicensing` this object
holds; pulling, verifying and running a model by an `aichain_node.runs.AsyncModelRuns` (made at
the first such call: it needs numpy). It passes their calls to them, with the same signatures.
The lineage views are `aichain_node.provenance`. Values come back as plain dicts with 0x-hex
addresses and `sha256:` ids, ready for JSON.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from aichain_node.artifact_transfers import Progress, ReadAs
from aichain_node.cards import ModelCard
from aichain_node.errors import ContractCallFailed, DatasetExists, ModelNotFound
from aichain_node.licensing import AsyncLicensing
from aichain_node.provenance import lineage_graph
from aichain_node.publishing import RELEASE_FUND, Published, publish_version
from aichain_node.search import search_models
from aichain_node.terms import ModelRef, Offer
from aichain_node.views import version_view
from core.artifact import format_id, parse_id
from core.keys import PrivateKey, address_hex
from core.system_addresses import MODELS

if TYPE_CHECKING:
    from collections.abc import Mapping

    import numpy as np

    from aichain_node.runs import AsyncModelRuns, Inference, Pulled

AIC = 10**9
EVENT_SPAN = 10_000  # blocks per contract_getEvents call


class ModelsClient(Protocol):
    """What the models API needs of the client (`AsyncClient`): its account and content-key directory,
    contract calls and transactions, uploads; and what the parts it holds need of it
    (`aichain_node.licensing.LicensingClient`, `aichain_node.runs.PullingClient`)."""

    @property
    def address(self) -> bytes: ...
    @property
    def content_key_dir(self) -> Path: ...
    @property
    def model_cache_dir(self) -> Path: ...
    def key_or_fail(self) -> PrivateKey: ...
    async def rpc(self, method: str, *params: Any) -> Any: ...
    async def head(self) -> dict[str, Any]: ...
    async def balance(self, address: bytes | None = None) -> int: ...
    async def view(self, contract: bytes, function: str, *args: Any) -> Any: ...
    async def send(
        self, contract: bytes, function: str, *args: Any, value: int = 0, wait: bool = True
    ) -> dict[str, Any]: ...
    async def transfer(self, to: bytes, amount: int, *, wait: bool = True) -> dict[str, Any]: ...
    async def wait_ok(self, tx_hash: str) -> dict[str, Any]: ...
    async def upload(
        self,
        source: Path | bytes,
        *,
        encrypt: bool = False,
        progress: Progress | None = None,
        content_key: bytes | None = None,
        artifact_id: bytes | None = None,
        publisher: bytes | None = None,
    ) -> dict[str, Any]: ...
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


class AsyncModels:
    """The model registry, licences, pulls and runs, for the client's account."""

    def __init__(self, client: ModelsClient) -> None:
        self.client = client
        self._versions: dict[tuple[str, int], dict[str, Any]] = {}
        self.licensing = AsyncLicensing(client, self)  # offers, licences, content-key envelopes
        self._runs: AsyncModelRuns | None = None

    # --- reading ------------------------------------------------------------------------------

    async def _view(self, contract: bytes, function: str, *args: Any) -> Any:
        return await self.client.view(contract, function, *args)

    async def info(self, name: str) -> dict[str, Any]:
        """Format, card (`aichain_node.cards`; None if it was registered without one), metadata bytes,
        owners with their shares, and the number of versions."""
        try:
            fmt, metadata, owners, count = await self._view(MODELS, "model_info", name)
        except ContractCallFailed as exc:
            raise ModelNotFound(f"no model named {name!r} is registered on this chain") from exc
        card = ModelCard.decode(bytes(metadata))
        return {
            "model": name,
            "format": fmt,
            "card": None if card is None else card.to_json(),
            "metadata": "0x" + bytes(metadata).hex(),
            "owners": [{"address": address_hex(o[0]), "bps": o[1]} for o in owners],
            "versions": count,
        }

    async def names(self) -> list[str]:
        """Every registered model's name, in the order they were registered."""
        published = await self.events(MODELS, "VersionPublished")
        return [e["fields"]["model"] for e in published if int(e["fields"]["version"]) == 1]

    async def search(
        self, words: Sequence[str] = (), *, task: str = "", tag: str = "", owner: bytes | None = None
    ) -> list[dict[str, Any]]:
        """The models whose name or card matches (`aichain_node.search.search_models`), as `info` gives them."""
        return await search_models(self, words, task=task, tag=tag, owner=owner)

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

    async def is_owner(self, name: str) -> bool:
        """True if this account is one of the model's owners."""
        return address_hex(self.client.address) in {o["address"] for o in (await self.info(name))["owners"]}

    async def events(self, contract: bytes, name: str) -> list[dict[str, Any]]:
        head = int((await self.client.head())["height"])
        found: list[dict[str, Any]] = []
        for first in range(1, head + 1, EVENT_SPAN):
            found += await self.client.rpc(
                "contract_getEvents", address_hex(contract), first, min(first + EVENT_SPAN - 1, head), name
            )
        return found

    async def lineage(self, name: str) -> dict[str, Any]:
        """The provenance DAG of a model (aichain_node.provenance): versions, parents, datasets, owners, licences,
        receipts."""
        return await lineage_graph(self, name)

    # --- writing ------------------------------------------------------------------------------

    async def publish(
        self,
        source: Path,
        name: str,
        *,
        private: bool = False,
        parents: Sequence[str] = (),
        datasets: Sequence[str] = (),
        owners: Sequence[tuple[bytes, int]] | None = None,
        offer: Offer | None = None,
        format: str = "onnx",
        metadata: bytes = b"",
        release: bool = True,
        release_fund: int = RELEASE_FUND,
        progress: Progress | None = None,
        card: ModelCard | None = None,
    ) -> Published:
        """Store `source` (a file or a directory) on the node, encrypted if `private`, and register it as
        the next version of `name` (a new model if the name is free), with its parents and datasets.

        A private model's content key stays on the node it was stored on, for versions this account
        publishes (the upload names it); with `release`, that node's releaser account is named for the
        model and given `release_fund` for gas, so it posts each buyer's envelope when a licence is
        bought. With `offer`, licences are offered at once. A new model's `card` is recorded with it,
        with its inputs and outputs read from the ONNX file (`publishing.publish_version`)."""
        return await publish_version(
            self.client,
            self.licensing,
            source,
            name,
            private=private,
            parents=parents,
            datasets=datasets,
            owners=owners,
            offer=offer,
            format=format,
            metadata=metadata,
            release=release,
            release_fund=release_fund,
            progress=progress,
            card=card,
        )

    async def register_dataset(
        self, dataset: str, *, terms: str = "", owners: Sequence[tuple[bytes, int]] | None = None
    ) -> dict[str, Any]:
        """Register a dataset (an artifact id, `sha256:…`) so versions can name it in `datasets`."""
        shares = [[who, bps] for who, bps in (owners or [(self.client.address, 10_000)])]
        try:  # the contract's rule, asked first: no transaction it would refuse
            known = await self.dataset_info(dataset)
        except ModelNotFound:
            return await self.client.send(MODELS, "register_dataset", parse_id(dataset), shares, terms)
        raise DatasetExists(
            f"{known['dataset']} is registered already, by {known['registrant']} (terms: {known['terms'] or 'none'}): "
            "versions can name it as it is"
        )

    async def dataset_info(self, dataset: str) -> dict[str, Any]:
        """A registered dataset: its owners with their shares, its terms and who registered it."""
        try:
            owners, terms, registrant = await self._view(MODELS, "dataset_info", parse_id(dataset))
        except ContractCallFailed as exc:
            raise ModelNotFound(f"no dataset {dataset} is registered on this chain") from exc
        return {
            "dataset": format_id(parse_id(dataset)),
            "owners": [{"address": address_hex(who), "bps": bps} for who, bps in owners],
            "terms": terms,
            "registrant": address_hex(registrant),
        }

    async def datasets(self) -> list[dict[str, Any]]:
        """Every registered dataset, oldest first: its id, who registered it, and at which height."""
        return [
            {
                "dataset": format_id(bytes.fromhex(e["fields"]["dataset"].removeprefix("0x"))),
                "registrant": e["fields"]["registrant"],
                "height": e["height"],
            }
            for e in await self.events(MODELS, "DatasetRegistered")
        ]

    # --- licences (aichain_node.licensing) ----------------------------------------------------

    async def offers(self, name: str) -> list[dict[str, Any]]:
        """The licence offers made for a model's versions (`AsyncLicensing.offers`)."""
        return await self.licensing.offers(name)

    async def licence(self, ref: ModelRef | str, who: bytes | None = None) -> dict[str, Any] | None:
        """The licence `who` (default: this account) holds to a version, or None (`AsyncLicensing.licence`)."""
        return await self.licensing.licence(ref, who)

    async def is_licensed(self, name: str, version: int, who: bytes | None = None) -> bool:
        """True if `who` (default: this account) may use the version (`AsyncLicensing.is_licensed`)."""
        return await self.licensing.is_licensed(name, version, who)

    async def licences(self, who: bytes | None = None) -> list[dict[str, Any]]:
        """Every licence an account has bought, as it stands now (`AsyncLicensing.licences`)."""
        return await self.licensing.licences(who)

    async def make_offer(self, ref: ModelRef | str, offer: Offer) -> int:
        """Offer licences to a version; the offer's number (`AsyncLicensing.make_offer`)."""
        return await self.licensing.make_offer(ref, offer)

    async def buy(self, ref: ModelRef | str, *, offer: int | None = None, deposit: int = 0) -> dict[str, Any]:
        """Buy a licence to a version under an open offer (`AsyncLicensing.buy`)."""
        return await self.licensing.buy(ref, offer=offer, deposit=deposit)

    async def withdraw_offer(self, name: str, offer: int) -> dict[str, Any]:
        """Sell no more licences under an offer (`AsyncLicensing.withdraw_offer`)."""
        return await self.licensing.withdraw_offer(name, offer)

    async def top_up(self, ref: ModelRef | str, amount: int) -> dict[str, Any]:
        """Add to the per-use deposit of this account's licence (`AsyncLicensing.top_up`)."""
        return await self.licensing.top_up(ref, amount)

    async def end_licence(self, ref: ModelRef | str) -> dict[str, Any]:
        """End this account's licence now (`AsyncLicensing.end_licence`)."""
        return await self.licensing.end_licence(ref)

    async def withdraw_deposit(self, ref: ModelRef | str) -> int:
        """Take back a licence's deposit a day after it ended (`AsyncLicensing.withdraw_deposit`)."""
        return await self.licensing.withdraw_deposit(ref)

    async def why_not_licensed(self, ref: ModelRef | str, who: bytes | None = None) -> str:
        """Why an account may not use a version, and the step that helps (`AsyncLicensing.why_not_licensed`)."""
        return await self.licensing.why_not_licensed(ref, who)

    async def publish_encryption_key(self) -> bool:
        """Publish this account's encryption key unless it is on chain (`AsyncLicensing.publish_encryption_key`)."""
        return await self.licensing.publish_encryption_key()

    async def releaser(self, name: str) -> str | None:
        """The account named to post the model's envelopes besides its owners (`AsyncLicensing.releaser`)."""
        return await self.licensing.releaser(name)

    async def node_releaser(self) -> bytes | None:
        """The account the node posts envelopes with, if any (`AsyncLicensing.node_releaser`)."""
        return await self.licensing.node_releaser()

    async def release(self, ref: ModelRef | str, licensees: Sequence[bytes] | None = None) -> list[str]:
        """Post, as an owner, the envelopes licensees still wait for (`AsyncLicensing.release`)."""
        return await self.licensing.release(ref, licensees)

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
        """How long a licensee's pull waits for the owner's node to post its envelope (`ModelAccess.content_key`)."""
        return self.runs.access.release_wait_s

    @release_wait_s.setter
    def release_wait_s(self, seconds: float) -> None:
        self.runs.access.release_wait_s = seconds

    def cache_path(self, name: str, version: int, directory: bool) -> Path:
        """Where a pulled version is kept: under the client's `model_cache_dir`."""
        return self.runs.cache_path(name, version, directory)

    async def pull(
        self,
        ref: ModelRef | str,
        dest: Path | None = None,
        *,
        progress: Progress | None = None,
        fetch_progress: Progress | None = None,
        refresh: bool = False,
    ) -> Pulled:
        """Fetch a version, check it against the chain, decrypt it here (`AsyncModelRuns.pull`)."""
        return await self.runs.pull(ref, dest, progress=progress, fetch_progress=fetch_progress, refresh=refresh)

    async def verify(self, path: Path, ref: ModelRef | str) -> dict[str, Any]:
        """Hash a local copy and compare it with the version's artifact id on chain (`AsyncModelRuns.verify`)."""
        return await self.runs.verify(path, ref)

    async def content_key(self, name: str, version: int, artifact: bytes, *, wait_s: float | None = None) -> bytes:
        """This account's content key for a private version (`AsyncModelRuns.content_key`)."""
        return await self.runs.content_key(name, version, artifact, wait_s=wait_s)

    async def run(
        self,
        ref: ModelRef | str,
        inputs: Mapping[str, np.ndarray] | np.ndarray,
        *,
        record: bool = False,
        path: Path | None = None,
    ) -> Inference:
        """Run a verified version on numpy inputs, recording the receipt with `record` (`AsyncModelRuns.run`)."""
        return await self.runs.run(ref, inputs, record=record, path=path)

    async def record(self, name: str, version: int, input_hash: bytes, output_hash: bytes) -> dict[str, Any]:
        """Put an inference receipt on chain (`AsyncModelRuns.record`)."""
        return await self.runs.record(name, version, input_hash, output_hash)

    async def receipts(self, ref: ModelRef | str, *, first: int = 1, count: int = 256) -> list[dict[str, Any]]:
        """The inference receipts of a version, oldest first (`AsyncModelRuns.receipts`)."""
        return await self.runs.receipts(ref, first=first, count=count)

    async def check(
        self,
        ref: ModelRef | str,
        number: int,
        inputs: Mapping[str, np.ndarray] | np.ndarray,
        *,
        path: Path | None = None,
    ) -> dict[str, Any]:
        """Re-run recorded inference `number` and compare its digests (`AsyncModelRuns.check`)."""
        return await self.runs.check(ref, number, inputs, path=path)


__all__ = ["AIC", "AsyncModels", "ModelsClient", "Published"]
