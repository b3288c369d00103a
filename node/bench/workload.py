"""Benchmark workloads: funded accounts and pre-signed transfers (signed on every core)."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

from core.genesis import ChainParams, Genesis
from core.hashing import sha256
from core.keys import PrivateKey
from core.transaction import Transaction, TxKind
from core.units import UNIT
from core.validators import Validator, ValidatorSet
from vm.gas import TX_BASE

BENCH_CHAIN_ID = 9999
FUNDING = 1_000_000 * UNIT


def account_key(index: int) -> PrivateKey:
    return PrivateKey.from_seed(sha256(b"aichain bench account %d" % index))


def bench_genesis(
    validator: PrivateKey,
    senders: int,
    extra_addresses: list[bytes] | None = None,
    params: ChainParams | None = None,
) -> Genesis:
    allocations = {account_key(i).address: FUNDING for i in range(senders)}
    for address in extra_addresses or ():
        allocations.setdefault(address, 1)
    return Genesis(
        chain_id=BENCH_CHAIN_ID,
        chain_name="aichain-bench",
        timestamp_ms=1_767_225_600_000,
        validators=ValidatorSet((Validator(validator.public_key, 1),)),
        allocations=tuple(sorted(allocations.items())),
        params=params or ChainParams(),
    )


def _sign_range(args: tuple[int, int, int, int, list[bytes]]) -> list[bytes]:
    first, last, nonces, chain_id, recipients = args
    out: list[bytes] = []
    keys = [account_key(i) for i in range(first, last)]
    for nonce in range(nonces):
        for offset, key in enumerate(keys):
            to = recipients[(first + offset + nonce) % len(recipients)]
            tx = Transaction(chain_id, key.public_key, nonce, TX_BASE, 1, TxKind.TRANSFER, to, 1 + nonce, b"")
            out.append(tx.signed_by(key).encoded)
    return out


def signed_transfers(
    senders: int,
    per_sender: int,
    recipients: list[bytes],
    chain_id: int = BENCH_CHAIN_ID,
    first_sender: int = 0,
) -> list[bytes]:
    """Encoded signed transfers from accounts first_sender .. first_sender + senders - 1 (account_key
    indexes), nonces from 0, nonce-major (every sender's nonce 0, then every nonce 1, …).

    Signing is spread over every core; it is set-up, not part of what is measured.
    """
    workers = max(1, multiprocessing.cpu_count())
    step = max(1, -(-senders // workers))
    end = first_sender + senders
    jobs = [(a, min(a + step, end), per_sender, chain_id, recipients) for a in range(first_sender, end, step)]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        parts = list(pool.map(_sign_range, jobs))
    # re-interleave to nonce-major order across the workers' ranges
    out: list[bytes] = []
    sizes = [job[1] - job[0] for job in jobs]
    for nonce in range(per_sender):
        for part, size in zip(parts, sizes, strict=True):
            out.extend(part[nonce * size : (nonce + 1) * size])
    return out


def _sign_calls(args: tuple[int, int, int, bytes, int, bytes, int]) -> list[bytes]:
    first, last, nonces, to, value, data, gas = args
    keys = [account_key(i) for i in range(first, last)]
    return [
        Transaction(BENCH_CHAIN_ID, key.public_key, nonce, gas, 1, TxKind.CALL, to, value, data).signed_by(key).encoded
        for nonce in range(nonces)
        for key in keys
    ]


def signed_calls(senders: range, per_sender: int, to: bytes, value: int, data: bytes, gas: int) -> list[bytes]:
    """The same contract call from each of `senders` (account_key indexes), nonce-major, signed on every core."""
    workers = max(1, multiprocessing.cpu_count())
    step = max(1, -(-len(senders) // workers))
    starts = range(senders.start, senders.stop, step)
    jobs = [(a, min(a + step, senders.stop), per_sender, to, value, data, gas) for a in starts]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        parts = list(pool.map(_sign_calls, jobs))
    sizes = [job[1] - job[0] for job in jobs]
    out: list[bytes] = []
    for nonce in range(per_sender):
        for part, size in zip(parts, sizes, strict=True):
            out.extend(part[nonce * size : (nonce + 1) * size])
    return out
