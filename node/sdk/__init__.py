"""The Python SDK: talk to an aichain node from applications and notebooks.

- `Client` (blocking) and `AsyncClient` (asyncio): JSON-RPC, transactions signed with your
  key and waited for until finalized, contract calls, artifact upload and download.
- `client.models` (`node.sdk.models`, `node.sdk.runs`): publish, license, pull, verify, run
  and record AI models; `node.sdk.provenance` their lineage; `node.sdk.terms` how terms are written.
- `node.sdk.errors`: what they raise, the node's own error types.

See docs/sdk.md for examples (they run as tests).
"""

from __future__ import annotations

from node.sdk.aclient import DEFAULT_URL, AsyncClient
from node.sdk.client import Client
from node.sdk.errors import (
    AccessRefused,
    ArtifactMismatch,
    KeyNotReleased,
    ModelNotFound,
    NodeError,
    NodeUnreachable,
    NoOffer,
    NotFinalized,
    NotLicensed,
    TransactionEvicted,
    TransactionFailed,
    WrongNode,
)
from node.sdk.terms import ModelRef, Offer

__all__ = [
    "DEFAULT_URL",
    "AccessRefused",
    "ArtifactMismatch",
    "AsyncClient",
    "Client",
    "KeyNotReleased",
    "ModelNotFound",
    "ModelRef",
    "NoOffer",
    "NodeError",
    "NodeUnreachable",
    "NotFinalized",
    "NotLicensed",
    "Offer",
    "TransactionEvicted",
    "TransactionFailed",
    "WrongNode",
]
