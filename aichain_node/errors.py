"""What the SDK raises: the node's error types, rebuilt from their JSON-RPC codes, and the SDK's own.

A node error arrives as a JSON-RPC error object with a stable code (docs/rpc.md lists them).
The SDK raises a type for it: the one in `core.errors` (`NonceTooLow`, `InsufficientBalance`,
`ArtifactNotFound`, …), or for the codes of the node's contract calls one of its own, named as
the node names it (`ContractCallFailed`, `NotAContract`, `CallsBusy`). So an application catches
types, never parses messages; a code the SDK does not know comes back as `NodeError` with the
code. Which type a code gives depends on nothing else the process imports: only `core` and this
package count.
"""

from __future__ import annotations

from typing import Any

from core.errors import AdminRefused, AichainError, TransactionEvicted


class NodeUnreachable(AichainError):
    """No node answers at the URL (nothing listens, it did not answer in time, or what answers is not JSON-RPC)."""


class ContractCallFailed(AichainError):
    """A read-only contract call failed: the message is the VM's (a failed require says the contract's words)."""

    rpc_code = -32094


class NotAContract(AichainError):
    """There is no contract at the address called."""

    rpc_code = -32095


class CallsBusy(AichainError):
    """Too many read-only contract calls at once, from this client or in all: retry when one has answered."""

    rpc_code = -32096


class NodeError(AichainError):
    """A JSON-RPC error the SDK has no type for (the code says which)."""

    def __init__(self, message: str, code: int, data: Any = None) -> None:
        super().__init__(f"{message} (code {code})")
        self.rpc_code = code
        self.data = data


class TransactionFailed(AichainError):
    """The transaction was included and finalized, but its execution failed (it paid its gas)."""

    def __init__(self, receipt: dict[str, Any]) -> None:
        super().__init__(
            f"transaction {receipt['tx_hash']} failed in block {receipt['block_height']}: "
            f"{receipt.get('error') or 'no reason given'}"
        )
        self.receipt = receipt


class NoKey(AichainError):
    """The client was made without a signing key, and the call needs one (to sign, or to open an envelope)."""


class NotFinalized(AichainError):
    """A transaction the node accepted is not in a finalized block within the time waited."""


class ArtifactMismatch(AichainError):
    """Downloaded bytes whose SHA-256 is not the artifact id asked for (nothing is kept)."""


class ModelNotFound(AichainError):
    """No such model or version on chain."""


class NoOffer(AichainError):
    """No offer that this account may take for the version asked for."""


class AlreadyLicensed(AichainError):
    """The account holds a licence to the version that a purchase cannot extend: it never expires (add to
    its deposit instead), or it runs under another offer until it ends."""


class DatasetExists(AichainError):
    """The dataset is registered already (its owners and terms are set once, by its first registrant)."""


class StoredEncrypted(AichainError):
    """The node stores these bytes encrypted (they were uploaded as a private model's), so a public version
    naming them could never be pulled: nothing is published."""


class NotMetered(AichainError):
    """The licence is not metered per use, so it has no deposit to add to."""


class DepositLocked(AichainError):
    """A licence's per-use deposit is taken back only a notice period (a day) after the licence ends."""


class NotLicensed(AichainError):
    """The account holds no valid licence to a private model version, so it gets no content key."""


class NoContentKey(AichainError):
    """This machine keeps no content key for the version, so it cannot post envelopes itself."""


class ReceiptNotFound(AichainError):
    """No inference receipt with that number is recorded for the version."""


class KeyNotReleased(AichainError):
    """The account is licensed, but no content-key envelope for it is on chain yet."""


class AccessRefused(AichainError):
    """The node refused a private artifact's plaintext: unsigned or badly signed (`status` 401), not an owner or
    licensee of the version named (403), or too many signed reads at once (429). The message is the node's."""

    def __init__(self, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.status = status


class WrongNode(AichainError):
    """The client will not sign a read of private plaintext for this node: it reports no node key, or not the one
    the client was told to expect (`node_key=`). A signed read names the node it is for (`core.read_request`);
    a pinned key is what keeps a node that lies about its identity from collecting reads meant for another."""


def _is_ours(cls: type) -> bool:
    return cls.__module__.partition(".")[0] in ("core", "aichain_node")


def _known_types() -> dict[int, type[AichainError]]:
    """Each code's type, among those of `core` and this package (the node's own classes, if the process
    has imported them, are not the SDK's: the same code always gives the same type)."""
    found: dict[int, type[AichainError]] = {}
    pending: list[type[AichainError]] = [AichainError]
    while pending:
        cls = pending.pop(0)
        pending.extend(c for c in cls.__subclasses__() if _is_ours(c))
        code = cls.__dict__.get("rpc_code")
        if isinstance(code, int) and code not in found:
            found[code] = cls
    return found


def error_from_rpc(code: int, message: str, data: Any = None) -> AichainError:
    """The typed error for a JSON-RPC error object from a node."""
    cls = _known_types().get(code)
    if cls is None or cls is AichainError:
        return NodeError(message, code, data)
    try:
        error = cls(message)
    except TypeError:  # a type with another constructor: keep the code, say the type
        return NodeError(f"{cls.__name__}: {message}", code, data)
    if isinstance(data, dict):
        error.data = data
    return error


__all__ = [
    "AccessRefused",
    "AdminRefused",
    "AichainError",
    "AlreadyLicensed",
    "ArtifactMismatch",
    "CallsBusy",
    "ContractCallFailed",
    "DatasetExists",
    "DepositLocked",
    "KeyNotReleased",
    "ModelNotFound",
    "NoContentKey",
    "NoKey",
    "NoOffer",
    "NodeError",
    "NodeUnreachable",
    "NotAContract",
    "NotFinalized",
    "NotLicensed",
    "NotMetered",
    "StoredEncrypted",
    "TransactionEvicted",
    "TransactionFailed",
    "WrongNode",
    "error_from_rpc",
]
