"""Who sent the request being answered: the client's address, for per-client limits, and whether it
may make admin calls (`node.rpc.admin`).

The HTTP endpoint sets both for each request (each runs in its own task, so the values never
leak between requests); handlers read them with `client()` and `admin_refusal()`.
"""

from __future__ import annotations

from contextvars import ContextVar

_CLIENT: ContextVar[str] = ContextVar("rpc_client", default="local")
# None: admin calls are served. Outside an HTTP request (tests, in-process) there is no remote caller.
_ADMIN_REFUSAL: ContextVar[str | None] = ContextVar("rpc_admin_refusal", default=None)


def set_client(address: str | None, admin_refusal: str | None = None) -> None:
    """Record the address the current request came from (unknown when the transport has none), and why
    it may not make admin calls (None: it may)."""
    _CLIENT.set(address or "unknown")
    _ADMIN_REFUSAL.set(admin_refusal)


def client() -> str:
    """The address the current request came from; "local" outside an HTTP request (tests, in-process)."""
    return _CLIENT.get()


def admin_refusal() -> str | None:
    """Why the current request may not make admin calls; None if it may."""
    return _ADMIN_REFUSAL.get()
