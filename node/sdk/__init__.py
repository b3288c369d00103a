"""The Python SDK: talk to an aichain node from applications and notebooks.

- `Client` (blocking) and `AsyncClient` (asyncio): JSON-RPC, transactions signed with your
  key and waited for until finalized, contract calls, artifact upload and download.
- `node.sdk.errors`: what they raise, the node's own error types.

See docs/sdk.md for examples (they run as tests).
"""

from __future__ import annotations

from node.sdk.aclient import DEFAULT_URL, AsyncClient
from node.sdk.client import Client
from node.sdk.errors import ArtifactMismatch, NodeError, NodeUnreachable, NotFinalized, TransactionFailed

__all__ = [
    "DEFAULT_URL",
    "ArtifactMismatch",
    "AsyncClient",
    "Client",
    "NodeError",
    "NodeUnreachable",
    "NotFinalized",
    "TransactionFailed",
]
