"""`client.models` is composed, not inherited: `AsyncModels` (the registry) holds an `AsyncLicensing`
(offers, licences, key release) and an `AsyncModelRuns` (pull, verify, run), each asking what it needs
of a narrow port, and offers their calls with the same signatures."""

from __future__ import annotations

import hashlib
import inspect
from pathlib import Path
from typing import Any

import pytest

from aichain_node import AsyncClient, ModelRef
from aichain_node.errors import ArtifactMismatch
from aichain_node.licensing import AsyncLicensing
from aichain_node.models import AsyncModels
from aichain_node.runs import AsyncModelRuns, Registry
from core.artifact import format_id

OFFERED = ["cache_path", "check", "content_key", "pull", "receipts", "record", "run", "verify"]
LICENSING = [
    "buy",
    "is_licensed",
    "licence",
    "licences",
    "make_offer",
    "node_releaser",
    "offers",
    "publish_encryption_key",
    "release",
    "releaser",
    "withdraw_offer",
    "top_up",
    "end_licence",
    "withdraw_deposit",
    "why_not_licensed",
]


def test_neither_inherits_from_the_other() -> None:
    assert AsyncModels.__mro__ == (AsyncModels, object)
    assert AsyncModelRuns.__mro__ == (AsyncModelRuns, object)
    assert AsyncLicensing.__mro__ == (AsyncLicensing, object)


@pytest.mark.parametrize("name", LICENSING)
def test_the_models_api_offers_the_licensing_calls_as_they_are(name: str) -> None:
    assert inspect.signature(getattr(AsyncModels, name)) == inspect.signature(getattr(AsyncLicensing, name))
    assert inspect.iscoroutinefunction(getattr(AsyncModels, name))
    assert inspect.iscoroutinefunction(getattr(AsyncLicensing, name))


@pytest.mark.parametrize("name", OFFERED)
def test_the_models_api_offers_the_runs_calls_as_they_are(name: str) -> None:
    assert inspect.signature(getattr(AsyncModels, name)) == inspect.signature(getattr(AsyncModelRuns, name))
    assert inspect.iscoroutinefunction(getattr(AsyncModels, name)) == inspect.iscoroutinefunction(
        getattr(AsyncModelRuns, name)
    )


def test_the_registry_port_is_what_models_provide() -> None:
    port = {n for n, v in vars(Registry).items() if inspect.iscoroutinefunction(v)}
    assert port == {"version", "licence", "is_licensed", "is_owner", "why_not_licensed"}
    for name in port:
        assert inspect.signature(getattr(AsyncModels, name)) == inspect.signature(getattr(Registry, name))


class OneVersion:
    """A registry that knows one version of one model: what `AsyncModelRuns.verify` asks of its port."""

    def __init__(self, artifact: bytes) -> None:
        self.artifact = artifact
        self.asked: list[str] = []

    async def version(self, ref: ModelRef | str) -> dict[str, Any]:
        self.asked.append(str(ref))
        return {"model": "net", "version": 1, "artifact": format_id(self.artifact)}

    async def licence(self, ref: ModelRef | str, who: bytes | None = None) -> dict[str, Any] | None:
        raise AssertionError("verify needs no licence")

    async def is_licensed(self, name: str, version: int, who: bytes | None = None) -> bool:
        raise AssertionError("verify needs no licence")

    async def is_owner(self, name: str) -> bool:
        raise AssertionError("verify needs no owners")


async def test_verify_runs_on_its_port_alone(tmp_path: Path) -> None:
    model = tmp_path / "net.onnx"
    model.write_bytes(b"the model's bytes")
    registry = OneVersion(hashlib.sha256(model.read_bytes()).digest())
    async with AsyncClient("http://127.0.0.1:1", model_cache_dir=tmp_path / "cache") as client:  # no node at all
        runs = AsyncModelRuns(client, registry)
        checked = await runs.verify(model, "net@1")
        assert checked == {
            "path": str(model),
            "model": "net",
            "version": 1,
            "artifact": format_id(registry.artifact),
            "ok": True,
        }
        model.write_bytes(b"other bytes")
        with pytest.raises(ArtifactMismatch, match="it is not that model"):
            await runs.verify(model, "net@1")
        assert runs.cache_path("net", 1, False) == tmp_path / "cache" / "net" / "1" / "model.onnx"
    assert registry.asked == ["net@1", "net@1"]
