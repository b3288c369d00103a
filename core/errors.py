"""The one exception hierarchy of aichain-node.

Every error a user can meet is a type here. Each carries a stable JSON-RPC server error
code (the -32000..-32099 range reserved by JSON-RPC 2.0 for implementations) so that an
application can tell one rejection from another without parsing messages. The message
says what was wrong and, where it helps, what to do.
"""

from __future__ import annotations


class AichainError(Exception):
    """Base of every error raised on purpose by aichain-node."""

    rpc_code: int = -32000

    def __init__(self, message: str = "", **data: object) -> None:
        super().__init__(message or self.__class__.__name__)
        self.message = message or self.__class__.__name__
        self.data = data

    def __str__(self) -> str:
        return self.message


# --- encoding -------------------------------------------------------------------------------------


class DecodeError(AichainError):
    """Bytes that are not a valid canonical encoding of the expected object."""

    rpc_code = -32010


class NonCanonicalEncoding(DecodeError):
    """Bytes that decode, but are not the one canonical encoding of their value."""

    rpc_code = -32011


class EncodingTooLarge(DecodeError):
    """An object over a size limit (bytes, items or nesting)."""

    rpc_code = -32012


# --- keys and signatures --------------------------------------------------------------------------


class KeyFileError(AichainError):
    """A key file or key material that cannot be used."""

    rpc_code = -32020


class WrongPassword(KeyFileError):
    """The password does not decrypt the key file."""

    rpc_code = -32021


class InvalidSignature(AichainError):
    """A signature that does not verify for the claimed key, domain and chain."""

    rpc_code = -32003


class InvalidAddress(AichainError):
    """A string that is not a 0x-prefixed, 20-byte hex address."""

    rpc_code = -32022


# --- transactions ---------------------------------------------------------------------------------


class InvalidTransaction(AichainError):
    """A transaction that can never be valid as it stands."""

    rpc_code = -32002


class WrongChainId(InvalidTransaction):
    """A transaction signed for another chain."""

    rpc_code = -32004


class NonceTooLow(InvalidTransaction):
    """The sender already used this nonce."""

    rpc_code = -32005


class NonceTooHigh(InvalidTransaction):
    """The nonce leaves a gap after the sender's next nonce (pending ones included)."""

    rpc_code = -32006


class FeeTooLow(InvalidTransaction):
    """Gas price under the chain's minimum, or too low to replace a pending transaction."""

    rpc_code = -32007


class InsufficientBalance(InvalidTransaction):
    """The sender cannot pay value plus the maximum fee (gas limit x gas price)."""

    rpc_code = -32008


class GasLimitTooLow(InvalidTransaction):
    """The gas limit does not cover the transaction's intrinsic gas."""

    rpc_code = -32009


class GasLimitTooHigh(InvalidTransaction):
    """The gas limit exceeds the block gas limit."""

    rpc_code = -32013


class AmountOverflow(InvalidTransaction):
    """An amount outside the unsigned 64-bit range of the native token."""

    rpc_code = -32014


class MempoolFull(AichainError):
    """The mempool (or this sender's share of it) is at its bound."""

    rpc_code = -32015


class AlreadyKnown(AichainError):
    """The transaction is already in the mempool or on chain."""

    rpc_code = -32016


class TransactionEvicted(AichainError):
    """The node admitted the transaction but evicted it from its mempool uncommitted; `data`
    says why (`reason`, `evicted_at_ms`, and `by`: the transaction that caused it, if one did)."""

    rpc_code = -32017


# --- blocks and chain -----------------------------------------------------------------------------


class InvalidBlock(AichainError):
    """A block that breaks a validity rule."""

    rpc_code = -32030


class InvalidHeader(InvalidBlock):
    """A header that fails a stateless or contextual check."""

    rpc_code = -32031


class InvalidCommit(InvalidBlock):
    """A commit without more than 2/3 of the voting power of valid precommits."""

    rpc_code = -32032


class StateRootMismatch(InvalidBlock):
    """Executing the block gives another state root than its header claims."""

    rpc_code = -32033


class StorageError(AichainError):
    """The database is missing, locked by another process, or corrupt."""

    rpc_code = -32050


class ConfigError(AichainError):
    """A configuration value or genesis file that cannot be used."""

    rpc_code = -32060


class AdminRefused(AichainError):
    """An admin method or route (one that administers the node's own resources) called by a client the
    node does not trust with it: neither from its own machine nor with its admin token."""

    rpc_code = -32040


class ArtifactError(AichainError):
    """An artifact store operation that cannot be done (base of the artifact errors)."""

    rpc_code = -32110


class ArtifactNotFound(ArtifactError):
    """No artifact (or chunk) with this id is stored here."""

    rpc_code = -32111


class CorruptChunk(ArtifactError):
    """A stored or received chunk whose bytes do not hash to its id."""

    rpc_code = -32112


class ArtifactErased(ArtifactError):
    """The artifact was erased on request; it is not fetched again unless asked explicitly."""

    rpc_code = -32113


class ArtifactKeyConflict(ArtifactError):
    """Bytes stored encrypted here under one content key, offered again under another: the first stays."""

    rpc_code = -32114
