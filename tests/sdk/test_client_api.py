"""`AsyncClient` is composed, not inherited: it holds an `ArtifactTransfers` that asks what it needs of a
narrow `Node` port, and offers its calls with the same signatures."""

from __future__ import annotations

import inspect

import pytest

from aichain_node import AsyncClient
from aichain_node.artifact_transfers import ArtifactTransfers, Node

OFFERED = ["download", "download_plaintext", "download_stored", "fetch", "read_headers", "stored_summary", "upload"]


def test_the_client_inherits_nothing() -> None:
    assert AsyncClient.__mro__ == (AsyncClient, object)
    assert ArtifactTransfers.__mro__ == (ArtifactTransfers, object)


def test_the_client_offers_every_transfer() -> None:
    public = {n for n, v in vars(ArtifactTransfers).items() if not n.startswith("_") and inspect.isfunction(v)}
    assert public == set(OFFERED)


@pytest.mark.parametrize("name", OFFERED)
def test_the_client_offers_the_transfer_calls_as_they_are(name: str) -> None:
    assert inspect.signature(getattr(AsyncClient, name)) == inspect.signature(getattr(ArtifactTransfers, name))
    assert inspect.iscoroutinefunction(getattr(AsyncClient, name))
    assert inspect.iscoroutinefunction(getattr(ArtifactTransfers, name))


def test_the_node_port_is_what_the_client_provides() -> None:
    port = {n for n in vars(Node) if not n.startswith("_")}
    assert port == {"url", "timeout", "session", "admin_headers", "key_or_fail", "chain_id", "node_key", "rpc"}
    for name in port:
        if inspect.isfunction(vars(Node)[name]):
            assert inspect.signature(getattr(AsyncClient, name)) == inspect.signature(getattr(Node, name))


def test_the_admin_token_goes_in_a_bearer_header_only_when_given() -> None:
    assert AsyncClient("http://127.0.0.1:1").admin_headers() == {}
    with_token = AsyncClient("http://127.0.0.1:1", admin_token=" s3cret-token-0123456789\n")
    assert with_token.admin_headers() == {"Authorization": "Bearer s3cret-token-0123456789"}
