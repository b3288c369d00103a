"""Who sent the request being answered: the client's address, for per-client limits.

The HTTP endpoint sets it for each request (each runs in its own task, so the value never
leaks between requests); handlers read it with `client()`.
"""

from __future__ import annotations

from contextvars import ContextVar

_CLIENT: ContextVar[str] = ContextVar("rpc_client", default="local")


def set_client(address: str | None) -> None:
    """Record the address the current request came from (unknown when the transport has none)."""
    _CLIENT.set(address or "unknown")


def client() -> str:
    """The address the current request came from; "local" outside an HTTP request (tests, in-process)."""
    return _CLIENT.get()
