"""Finding models by what their cards say: words, task, tag and owner (`client.models.search`).

The chain has no index of cards: this reads every model's card (one read-only call each) and
filters here, which suits chains of up to some thousands of models.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol

from aichain_node.cards import ModelCard
from core.keys import address_hex


class Cards(Protocol):
    """The registry as search reads it (`aichain_node.models.AsyncModels`)."""

    async def names(self) -> list[str]: ...
    async def info(self, name: str) -> dict[str, Any]: ...


async def search_models(
    registry: Cards, words: Sequence[str] = (), *, task: str = "", tag: str = "", owner: bytes | None = None
) -> list[dict[str, Any]]:
    """The models (as `info` gives them) whose name holds every word, or whose card does (in its
    description, task, tags or licence), case-insensitively; with that task and tag if given, owned in
    part by `owner` if given; in registration order."""
    infos = await asyncio.gather(*(registry.info(n) for n in await registry.names()))
    return [info for info in infos if _matches(info, words, task, tag, owner)]


def _matches(info: dict[str, Any], words: Sequence[str], task: str, tag: str, owner: bytes | None) -> bool:
    card = ModelCard.decode(bytes.fromhex(info["metadata"].removeprefix("0x"))) or ModelCard()
    name = info["model"].lower()
    if words and not (card.matches(list(words)) or all(w.lower() in name for w in words)):
        return False
    if task and card.task.lower() != task.lower():
        return False
    if tag and tag.lower() not in (t.lower() for t in card.tags):
        return False
    return owner is None or address_hex(owner) in (o["address"] for o in info["owners"])


__all__ = ["search_models"]
