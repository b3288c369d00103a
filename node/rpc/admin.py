"""Admin methods and routes: who may administer this node's own resources over its HTTP port.

Admin calls are the methods registered with `admin=True` (removing, collecting, pinning,
fetching and re-hashing artifacts) and artifact uploads (`PUT /artifacts`): they spend this
node's disk, CPU and bandwidth or delete what it stores. The rule (`AdminGate.refusal`):

* a call whose TCP peer is loopback (127.0.0.0/8, ::1, or either mapped into IPv6) is served
  when `[rpc] admin_from_loopback` is true (the default);
* a call carrying `Authorization: Bearer <token>`, the token equal to the one read from
  `[rpc] admin_token_file` at start (compared in constant time), is served from anywhere;
* a call carrying a token that is not this node's is refused, from loopback too: a script that
  sends a stale or mistyped token learns it on this machine, not after it moves to another;
* every other admin call is refused: JSON-RPC error -32040 (`core.errors.AdminRefused`), HTTP
  403 for an upload, saying what was missing and what to do.

The peer is the TCP connection's own: headers such as X-Forwarded-For are never read, since any
client can write them. So a reverse proxy on the node's machine makes every request loopback:
behind one, set `admin_from_loopback = false` and use the token.
"""

from __future__ import annotations

import hmac
import ipaddress
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from core.errors import ConfigError

MIN_TOKEN_CHARS: Final = 16
_BEARER: Final = "bearer"
_TO_DO: Final = (
    "call it from the node's own machine ([rpc] admin_from_loopback = true) or send the header "
    "'Authorization: Bearer <token>' with the token of [rpc] admin_token_file "
    "(aichain-node: --admin-token-file or AICHAIN_ADMIN_TOKEN_FILE; SDK: Client(admin_token=...))"
)


def is_loopback(peer: str | None) -> bool:
    """Whether `peer` (an IP address as the transport reports it) is a loopback address."""
    if not peer:
        return False  # a transport without an address (a Unix socket) is not known to be local
    try:
        address = ipaddress.ip_address(peer.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header; None for no header or another scheme."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != _BEARER:
        return None
    return token.strip()


@dataclass(frozen=True)
class AdminGate:
    """Who may make admin calls: loopback peers (`from_loopback`), and anyone sending `token`."""

    from_loopback: bool = True
    token: bytes | None = None

    def refusal(self, peer: str | None, authorization: str | None) -> str | None:
        """Why a call from `peer` with this `Authorization` header may not administer the node; None if it may."""
        sent = bearer_token(authorization)
        if sent is not None and self.token is not None:
            if hmac.compare_digest(sent.encode(), self.token):
                return None
            return f"the admin token sent is not this node's ([rpc] admin_token_file); {_TO_DO}"
        local = is_loopback(peer)
        if local and self.from_loopback:
            return None
        if sent is not None:  # this node has no token to compare it with
            return f"an admin token was sent, but this node has none ([rpc] admin_token_file is not set); {_TO_DO}"
        if local:
            return (
                "admin calls from loopback are off on this node ([rpc] admin_from_loopback = false, as behind "
                "a reverse proxy); send the header 'Authorization: Bearer <token>' with the token of "
                "[rpc] admin_token_file"
            )
        origin = peer or "an unknown address"
        return f"it came from {origin}, not from this node's machine, without an admin token; {_TO_DO}"


# The default of the routes: admin calls from loopback only, as a node with no settings serves them.
LOOPBACK_ONLY: Final = AdminGate()


def read_admin_token(path: Path) -> bytes:
    """The admin token in `path` (its text, surrounding whitespace removed); ConfigError saying what to fix
    when the file is missing, readable or writable by anyone but its owner (like a key file: chmod 600),
    or holds fewer than MIN_TOKEN_CHARS characters."""
    where = f"rpc.admin_token_file ({path})"
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{where}: no such file; write a token there (e.g. `openssl rand -hex 32 > {path}; chmod 600 {path}`) "
            "or unset the setting"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: cannot be read as text: {exc}") from None
    if mode & 0o077:
        raise ConfigError(
            f"{where}: mode {mode:04o} lets other users read or change the admin token; `chmod 600 {path}`"
        )
    token = text.strip()
    if len(token) < MIN_TOKEN_CHARS or any(c.isspace() for c in token):
        raise ConfigError(
            f"{where}: the token must be one word of at least {MIN_TOKEN_CHARS} characters "
            "(e.g. `openssl rand -hex 32`)"
        )
    return token.encode()
