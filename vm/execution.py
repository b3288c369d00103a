"""The state transition: applying transactions and blocks to a `StateView`.

Rules, in the order they are checked for each transaction:
1. it is for this chain; its kind is known; it is within the size limits;
2. its gas price is at least the chain's minimum; its gas limit covers the intrinsic gas and
   fits in a block (rules 1-2 hold whatever the state: `check_stateless`, also the mempool's);
3. its nonce equals the sender's account nonce;
4. the sender's balance covers value + gas_limit x gas_price.
A transaction that breaks one of these cannot be in a block. Otherwise the sender pays
the whole fee up front and its nonce increases; the transaction then runs; unused gas is
refunded; the fee for the gas used goes to the block's proposer at the end of the block,
together with the block reward. Supply changes only by the block reward.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.errors import (
    AichainError,
    AmountOverflow,
    DecodeError,
    FeeTooLow,
    GasLimitTooHigh,
    GasLimitTooLow,
    InsufficientBalance,
    InvalidBlock,
    InvalidTransaction,
    NonceTooHigh,
    NonceTooLow,
    WrongChainId,
)
from core.evidence import DuplicateVote
from core.genesis import ChainParams
from core.receipt import STATUS_FAILED, STATUS_SUCCESS, Event, Receipt
from core.transaction import MAX_TX_BYTES, MAX_TX_DATA, Transaction, TxKind
from core.units import U64_MAX
from vm import validators
from vm.contract_tx import contract_transaction
from vm.faults import Fault
from vm.gas import intrinsic_gas
from vm.state import StateView

SUPPORTED_KINDS = frozenset({TxKind.TRANSFER, TxKind.VALIDATOR_VOTE, TxKind.DEPLOY, TxKind.CALL})
_TRANSFER = int(TxKind.TRANSFER)
_ADDRESS_SIZE = 20


@dataclass(frozen=True, slots=True)
class BlockContext:
    chain_id: int
    height: int
    timestamp_ms: int
    proposer: bytes
    params: ChainParams


@dataclass(slots=True)
class BlockResult:
    transactions: list[Transaction] = field(default_factory=list)
    receipts: list[Receipt] = field(default_factory=list)
    gas_used: int = 0
    fees: int = 0
    gas_reserved: int = 0  # the sum of the included transactions' gas limits (bounded by the block's)
    dropped: list[tuple[Transaction, AichainError]] = field(default_factory=list)


def check_stateless(tx: Transaction, chain_id: int, params: ChainParams) -> None:
    """Raise the `InvalidTransaction` subtype for the first state-independent rule `tx` breaks."""
    if tx.chain_id != chain_id:
        raise WrongChainId(f"transaction is signed for chain {tx.chain_id}; this is chain {chain_id}")
    if tx.kind not in SUPPORTED_KINDS:
        raise InvalidTransaction(f"transaction kind {tx.kind} is not supported on this chain yet")
    if len(tx.data) > MAX_TX_DATA or len(tx.encoded) > MAX_TX_BYTES:
        raise InvalidTransaction(f"transaction is too large: data is limited to {MAX_TX_DATA} bytes")
    if tx.gas_price < params.min_gas_price:
        raise FeeTooLow(f"gas price {tx.gas_price} is below the chain minimum of {params.min_gas_price}")
    needed = intrinsic_gas(tx.data)
    if tx.gas_limit < needed:
        raise GasLimitTooLow(f"gas limit {tx.gas_limit} is below the {needed} this transaction needs")
    if tx.gas_limit > params.block_gas_limit:
        raise GasLimitTooHigh(f"gas limit {tx.gas_limit} exceeds the block gas limit {params.block_gas_limit}")


def check_transaction(view: StateView, tx: Transaction, ctx: BlockContext) -> None:
    """Raise the `InvalidTransaction` subtype for the first inclusion rule `tx` breaks."""
    check_stateless(tx, ctx.chain_id, ctx.params)
    sender = view.account(tx.sender_address)
    if tx.nonce < sender.nonce:
        raise NonceTooLow(f"nonce {tx.nonce} already used; the sender's next nonce is {sender.nonce}")
    if tx.nonce > sender.nonce:
        raise NonceTooHigh(f"nonce {tx.nonce} leaves a gap; the sender's next nonce is {sender.nonce}")
    cost = tx.value + tx.max_fee
    if cost > sender.balance:
        raise InsufficientBalance(
            f"balance {sender.balance} cannot pay value {tx.value} + max fee {tx.max_fee} (= {cost}) units"
        )


def apply_transaction(view: StateView, tx: Transaction, ctx: BlockContext) -> Receipt:
    """Apply one transaction; raises `InvalidTransaction` if it may not be included at all."""
    if tx.kind == _TRANSFER:
        receipt = _plain_transfer(view, tx, ctx)
        if receipt is not None:
            return receipt
    return _apply(view, tx, ctx)


def _plain_transfer(view: StateView, tx: Transaction, ctx: BlockContext) -> Receipt | None:
    """`_apply` for a transfer that meets every rule and succeeds, the common case, in one pass;
    None, having changed nothing, for any other (then `_apply` raises or fails it as the rules say).

    Same checks, same state changes in the same order (a transfer to oneself included), same receipt.
    """
    params = ctx.params
    data, to, value = tx.data, tx.to, tx.value
    gas_limit, gas_price = tx.gas_limit, tx.gas_price
    gas_used = intrinsic_gas(data)
    if (
        tx.chain_id != ctx.chain_id
        or len(to) != _ADDRESS_SIZE
        or len(data) > MAX_TX_DATA
        or len(tx.encoded) > MAX_TX_BYTES
        or gas_price < params.min_gas_price
        or gas_limit < gas_used
        or gas_limit > params.block_gas_limit
    ):
        return None
    sender_address = tx.sender_address
    sender = view.account(sender_address)
    max_fee = gas_limit * gas_price
    if tx.nonce != sender.nonce or value + max_fee > sender.balance:
        return None
    recipient = view.account(to)
    # `_apply` checks the recipient's balance after the sender paid the fee: the same account if one's own.
    if (recipient.balance - max_fee if recipient is sender else recipient.balance) + value > U64_MAX:
        return None
    sender.balance -= max_fee
    sender.nonce += 1
    view.touch(sender_address)
    sender.balance -= value
    recipient.balance += value
    view.touch(to)
    sender.balance += (gas_limit - gas_used) * gas_price
    return Receipt.plain(tx.hash, STATUS_SUCCESS, gas_used)


def _apply(view: StateView, tx: Transaction, ctx: BlockContext) -> Receipt:
    """`apply_transaction` for any transaction, by the rules in the module's order."""
    check_transaction(view, tx, ctx)
    sender_address = tx.sender_address
    sender = view.account(sender_address)
    sender.balance -= tx.max_fee
    sender.nonce += 1
    view.touch(sender_address)
    gas_used = intrinsic_gas(tx.data)
    status, error = STATUS_SUCCESS, ""
    events: tuple[Event, ...] = ()
    recipient = view.account(tx.to) if len(tx.to) == 20 else None
    if tx.kind in (TxKind.DEPLOY, TxKind.CALL):
        outcome = contract_transaction(view, tx, ctx.height, ctx.timestamp_ms, tx.gas_limit - gas_used)
        gas_used += outcome.gas_used
        status, error, events = outcome.status, outcome.error, outcome.events
    elif tx.kind == TxKind.VALIDATOR_VOTE:
        if tx.value or tx.to:
            status, error = STATUS_FAILED, Fault.VOTE_SHAPE.value
        else:
            try:
                events = validators.vote(view, sender_address, tx.data, ctx.height)
            except DecodeError:  # the decoder's words are not consensus text: the expected form is
                status, error = STATUS_FAILED, Fault.VOTE_MALFORMED.value
            except PermissionError:
                status, error = STATUS_FAILED, Fault.VOTE_NOT_VALIDATOR.value
    elif recipient is None:
        status, error = STATUS_FAILED, Fault.NO_RECIPIENT.value
    elif recipient.balance + tx.value > U64_MAX:
        status, error = STATUS_FAILED, Fault.BALANCE_OVERFLOW.value
    else:
        sender.balance -= tx.value
        recipient.balance += tx.value
        view.touch(tx.to)
    sender.balance += (tx.gas_limit - gas_used) * tx.gas_price
    return Receipt(tx.hash, status, gas_used, events, error)


def apply_transactions(
    view: StateView,
    txs: list[Transaction],
    ctx: BlockContext,
    *,
    drop_invalid: bool,
    into: BlockResult | None = None,
) -> BlockResult:
    """Apply `txs` in order. A proposer drops invalid ones (`drop_invalid`); a verifier rejects the block.

    A proposer may build a block in several steps: `into` is the result of the earlier ones, on the same view.
    """
    result = BlockResult() if into is None else into
    max_txs, max_gas = ctx.params.max_block_txs, ctx.params.block_gas_limit
    included, receipts = result.transactions, result.receipts
    for index, tx in enumerate(txs):
        if len(included) >= max_txs or result.gas_reserved + tx.gas_limit > max_gas:
            if drop_invalid:
                break  # not `continue`: a later transaction of the same sender would then have a nonce gap
            raise InvalidBlock(f"block exceeds the limit of {max_txs} txs or its gas limit")
        try:
            receipt = apply_transaction(view, tx, ctx)
        except InvalidTransaction as exc:
            if not drop_invalid:
                raise InvalidBlock(f"transaction {index} ({tx.hash.hex()}) is invalid: {exc}") from exc
            result.dropped.append((tx, exc))
            continue
        result.gas_reserved += tx.gas_limit
        included.append(tx)
        receipts.append(receipt)
        gas_used = receipt.gas_used
        result.gas_used += gas_used
        result.fees += gas_used * tx.gas_price
    return result


def finalize_block(
    view: StateView, ctx: BlockContext, result: BlockResult, evidence: tuple[DuplicateVote, ...] = ()
) -> None:
    """Act on evidence, pay the proposer the block's fees and reward, then move the validator set on."""
    for item in evidence:
        validators.punish(view, item, ctx.chain_id, ctx.height)
    payout = result.fees + ctx.params.block_reward
    if payout:
        proposer = view.account(ctx.proposer)
        if proposer.balance + payout > U64_MAX:
            raise AmountOverflow("proposer balance would exceed 2^64-1 units")
        proposer.balance += payout
        view.touch(ctx.proposer)
    validators.advance(view, ctx.height + 1)
