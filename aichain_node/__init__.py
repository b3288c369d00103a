"""The Python SDK: talk to an aichain node from applications and notebooks.

- `Client` (blocking) and `AsyncClient` (asyncio): JSON-RPC, transactions signed with your
  key and waited for until finalized, contract calls, artifact upload and download.
- `client.models` (`aichain_node.models`, `aichain_node.runs`): publish, license, pull, verify, run
  and record AI models; `aichain_node.provenance` their lineage; `aichain_node.terms` how terms are written.
- `aichain_node.errors`: what they raise, the node's own error types.

See docs/sdk.md for examples (they run as tests).
"""

from __future__ import annotations

from aichain_node.aclient import DEFAULT_URL, AsyncClient
from aichain_node.client import Client
from aichain_node.errors import (
    AccessRefused,
    AdminRefused,
    AlreadyLicensed,
    ArtifactMismatch,
    DepositLocked,
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
from aichain_node.terms import ModelRef, Offer

__all__ = [
    "DEFAULT_URL",
    "AccessRefused",
    "AdminRefused",
    "AlreadyLicensed",
    "ArtifactMismatch",
    "AsyncClient",
    "Client",
    "DepositLocked",
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
