"""Publishing a model version from the SDK (`client.models.publish`): store the bytes on the node
(encrypted under a new content key for a private model), register the version with its parents
and datasets, name the node's releaser for a private model, and make the first offer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from aichain_node.artifact_transfers import Progress
from aichain_node.cards import ModelCard, onnx_signature
from aichain_node.content_keys import save_content_key
from aichain_node.errors import ContractCallFailed
from aichain_node.licensing import AsyncLicensing, offer_args
from aichain_node.terms import ModelRef, Offer, TermsError
from aichain_node.transfer import local_id
from aichain_node.views import event_field
from core.artifact import format_id
from core.keys import address_hex
from core.sealing import new_content_key
from core.system_addresses import KEYS, LICENSING, MODELS
from core.units import UNIT


class PublishingClient(Protocol):
    """What publishing needs of the client (`AsyncClient`): its account, where content keys are kept,
    uploads, contract calls and transactions."""

    @property
    def address(self) -> bytes: ...
    @property
    def content_key_dir(self) -> Path: ...
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


log = logging.getLogger(__name__)

RELEASE_FUND = UNIT  # 1 AIC: what a publisher gives its node's releaser for the gas of posting envelopes


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


async def publish_version(
    client: PublishingClient,
    licensing: AsyncLicensing,
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
    bought. With `offer`, licences are offered at once.

    A new model's card (`aichain_node.cards`) is recorded with it: `card`, with the inputs and outputs
    read from the ONNX file when the card names none (a card is recorded for every new ONNX model,
    so buyers see at least what it takes and gives). `metadata` bytes, if given, are recorded instead."""
    links = [[r.name, r.version] for r in map(ModelRef.parse, parents)]
    if any(version is None for _, version in links):
        raise TermsError(f"parents name their version: {list(parents)} (e.g. base@1)")
    try:
        await client.view(MODELS, "model_info", name)
    except ContractCallFailed:  # a new model: its card is made before any byte is stored
        exists = False
    else:
        exists = True
    if exists and card is not None:
        raise TermsError(
            f"{name} is registered already, and its card was recorded with it: a card goes with a new model "
            "(publish without the card's fields, or under a new name)"
        )
    if not exists and not metadata and format == "onnx":
        metadata = (await _with_signature(card or ModelCard(), source)).encode()
    elif not exists and card is not None:
        metadata = card.encode()
    content_key = artifact_id = None
    if private:  # the key is made here and kept here too, so the owners can post envelopes themselves
        artifact_id = await asyncio.to_thread(local_id, source)
        content_key = new_content_key()
        await asyncio.to_thread(save_content_key, client.content_key_dir, artifact_id, content_key)
    publisher = client.address if private else None  # the node keeps the key for versions this account publishes
    stored = await client.upload(
        source,
        encrypt=private,
        progress=progress,
        content_key=content_key,
        artifact_id=artifact_id,
        publisher=publisher,
    )
    artifact = bytes.fromhex(stored["id"].removeprefix("sha256:"))
    trained_on = [bytes.fromhex(d.removeprefix("sha256:")) for d in datasets]
    if exists:
        receipt = await client.send(MODELS, "publish_version", name, artifact, links, trained_on)
    else:
        shares = [[who, bps] for who, bps in (owners or [(client.address, 10_000)])]
        receipt = await client.send(
            MODELS, "register_derived", name, artifact, format, metadata, shares, links, trained_on
        )
    version = int(event_field(receipt, "VersionPublished", "version"))
    sends = []
    releaser = None
    if private and release:
        releaser = await licensing.node_releaser()
        if releaser is not None:
            if await client.view(KEYS, "releaser_of", name) != releaser:
                sends.append(client.send(KEYS, "set_releaser", name, releaser, wait=False))
            if await client.balance(releaser) < release_fund // 2:
                sends.append(client.transfer(releaser, release_fund, wait=False))
    if offer is not None:
        sends.append(client.send(LICENSING, "make_offer", *offer_args(name, version, offer), wait=False))
    sent = [await s for s in sends]  # in order: nonces follow each other
    receipts = [await client.wait_ok(s["tx_hash"]) for s in sent]
    offer_number = int(event_field(receipts[-1], "OfferMade", "offer")) if offer is not None else None
    return Published(
        name,
        version,
        format_id(artifact),
        private,
        offer_number,
        None if releaser is None else address_hex(releaser),
    )


async def _with_signature(card: ModelCard, source: Path) -> ModelCard:
    """`card` with the inputs and outputs the ONNX model at `source` declares, unless it names them already."""
    if card.inputs or card.outputs:
        return card
    try:
        inputs, outputs = await asyncio.to_thread(onnx_signature, source)
    except Exception as exc:  # a model onnxruntime cannot load here (custom operators): a card without them
        log.warning("the inputs and outputs of %s could not be read (%s); its card names none", source, exc)
        return card
    return dataclasses.replace(card, inputs=inputs, outputs=outputs)


__all__ = ["RELEASE_FUND", "Published", "PublishingClient", "publish_version"]
