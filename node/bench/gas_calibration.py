"""Gas calibration: how much time one gas buys, per kind of work, on this machine.

Gas is work: one gas should cost about the same time whatever spends it, or the block gas
limit cannot bound a block's time. Each kind is one public function of the contract in
`calibration.contract`, whose loop spends its gas on one thing (instructions of a kind, a
builtin, storage reads or writes by size, events, payments, calls between contracts);
deploys, plain transfers and calls carrying large data are kinds too. A kind is measured
the way a validator meets it: blocks of its transactions built (executed), state-rooted and
committed (fsynced) on a LevelDB chain. Its figure is CPU nanoseconds per gas. Only ratios
between kinds measured in one run mean something on a shared machine; `spread` gives the
slowest kind's ns per gas over the median kind's.

`full_block` fills a block to the gas limit with one kind, the worst block an attacker can
pay for, and times it (wall and CPU) to set beside the block time.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from core.contract_values import encode_call
from core.genesis import ChainParams, Genesis
from core.hashing import sha256
from core.keys import PrivateKey
from core.receipt import STATUS_SUCCESS
from core.transaction import MAX_TX_DATA, Transaction, TxKind
from core.units import UNIT
from core.validators import Validator, ValidatorSet
from vm.compiler import compile_contract
from vm.contract_tx import encode_deploy
from vm.contracts import CallContext, contract_address, run_call
from vm.gas import DEPLOY_BYTE, intrinsic_gas
from vm.state import StateView

CHAIN_ID = 9998
SENDERS = 64
FUNDS = 10_000_000 * UNIT

SOURCE = (Path(__file__).with_name("calibration.contract")).read_text()  # the kinds, one function each


# Kinds run by calling a function of SOURCE; `signatures` takes a key, a signature and a message.
FUNCTION_KINDS = (
    "loop",
    "arithmetic",
    "logic",
    "calls",
    "lists",
    "dicts",
    "small_bytes",
    "big_bytes",
    "search",
    "big_lists",
    "nested",
    "builtins",
    "hashing",
    "hashing_big",
    "signatures",
    "addresses",
    "events",
    "storage_read",
    "storage_read_cold",
    "storage_write",
    "storage_overwrite",
    "storage_write_big",
    "storage_delete",
    "payments",
    "contract_calls",
    "big_events",
)
KINDS = (*FUNCTION_KINDS, "transfers", "deploys", "data")


@dataclass(frozen=True)
class KindFigure:
    """One kind measured: the seconds of a block of it, and the block's gas."""

    name: str
    gas: int
    seconds: float  # CPU seconds for the calibration of kinds; wall seconds for a full block
    txs: int
    cpu_seconds: float = 0.0

    @property
    def ns_per_gas(self) -> float:
        return self.seconds * 1e9 / self.gas


def spread(figures: list[KindFigure]) -> tuple[float, float, KindFigure, KindFigure]:
    """(median ns/gas, largest over median, the slowest kind per gas, the fastest)."""
    median = statistics.median(f.ns_per_gas for f in figures)
    slowest = max(figures, key=lambda f: f.ns_per_gas)
    fastest = min(figures, key=lambda f: f.ns_per_gas)
    return median, slowest.ns_per_gas / median, slowest, fastest


class Calibrator:
    """A fresh single-validator LevelDB chain with the calibration contract deployed."""

    def __init__(self, datadir: Path, block_gas_limit: int) -> None:
        from node.chain import Chain
        from storage.kv import KeyValueStore

        self.validator = PrivateKey.from_seed(sha256(b"aichain gas calibration validator"))
        self.senders = [PrivateKey.from_seed(sha256(b"aichain gas calibration %d" % i)) for i in range(SENDERS)]
        self.nonces = [0] * SENDERS
        self._turn = 0
        params = ChainParams(block_gas_limit=block_gas_limit, max_block_txs=20_000)
        self.genesis = Genesis(
            chain_id=CHAIN_ID,
            chain_name="aichain-gas-calibration",
            timestamp_ms=1_767_225_600_000,
            validators=ValidatorSet((Validator(self.validator.public_key, 1),)),
            allocations=tuple(sorted((k.address, FUNDS) for k in self.senders)),
            params=params,
        )
        self.kv = KeyValueStore(datadir / "chaindata", cache_mb=64)
        self.chain = Chain(self.kv, self.genesis)
        self.module = compile_contract(SOURCE)
        deployer = self.senders[0]
        self.contract = contract_address(deployer.address, 0)
        code = encode_deploy(self.module, [])
        gas = intrinsic_gas(code) + DEPLOY_BYTE * len(code) + 1_000_000
        deploy = self._tx(TxKind.DEPLOY, b"", 1_000 * UNIT, code, gas, sender=0)
        self.commit([deploy])
        signer = Ed25519PrivateKey.from_private_bytes(sha256(b"aichain gas calibration signer"))
        message = b"m" * 64
        self.signature_args = [signer.public_key().public_bytes_raw(), signer.sign(message), message]

    def close(self) -> None:
        self.kv.close()

    # --- transactions -------------------------------------------------------------------------

    def _tx(self, kind: TxKind, to: bytes, value: int, data: bytes, gas: int, sender: int | None = None) -> Transaction:
        if sender is None:
            sender = self._turn
            self._turn = (self._turn + 1) % SENDERS
        key = self.senders[sender]
        tx = Transaction(CHAIN_ID, key.public_key, self.nonces[sender], gas, 1, kind, to, value, data)
        self.nonces[sender] += 1
        return tx.signed_by(key)

    def commit(self, txs: list[Transaction], clock: Any = time.perf_counter) -> tuple[float, int]:
        """Build, root and commit a block of `txs`: (seconds by `clock`, gas used); every one must succeed."""
        from consensus.single import single_validator_commit

        started = clock()
        pending = self.chain.build(txs, self.validator.address, self.chain.head.timestamp_ms + 1000)
        header = pending.block.header
        commit = single_validator_commit(self.validator, self.genesis.validators, CHAIN_ID, header)
        self.chain.commit(pending, commit)
        seconds = clock() - started
        failed = [r for r in pending.receipts if r.status != STATUS_SUCCESS]
        if failed or len(pending.receipts) != len(txs):
            reason = failed[0].error if failed else "dropped from the block"
            raise RuntimeError(f"a calibration transaction failed: {reason}")
        return seconds, header.gas_used

    # --- kinds --------------------------------------------------------------------------------

    def _args(self, kind: str, n: int) -> list[Any]:
        return [n, *self.signature_args] if kind == "signatures" else [n]

    def gas_per_iteration(self, kind: str) -> tuple[int, int]:
        """(gas of a call with n=0, gas per further iteration), from dry runs on the head state."""

        # Past the first turns: a loop's early turns may take other branches (`logic` does).
        base, some, more = self.call_gas(kind, 0), self.call_gas(kind, 8), self.call_gas(kind, 40)
        return base, max(1, (more - some) // 32)

    def call_gas(self, kind: str, n: int) -> int:
        """Gas a call of `kind` with `n` turns uses (a dry run on the head state)."""
        ctx = CallContext(self.contract, self.chain.head.height + 1, 0, chain_id=CHAIN_ID)
        view = StateView(self.chain.state)
        return run_call(view, ctx, self.senders[0].address, self.contract, kind, self._args(kind, n), 0, 10**12)[1]

    def kind_txs(self, kind: str, block_gas: int, tx_gas: int) -> list[Transaction]:
        """Transactions of `kind` that together use about `block_gas`, each about `tx_gas`."""
        if kind == "transfers":
            count = max(1, block_gas // 21_000)
            return [self._tx(TxKind.TRANSFER, sha256(b"to %d" % i)[:20], 1, b"", 21_000) for i in range(count)]
        if kind == "data":  # calls whose arguments are one large bytes value: block bytes, not execution
            half = (MAX_TX_DATA - 128) // 2
            data = encode_call("data", [0, [b"d" * half, b"e" * half]])
            gas = intrinsic_gas(data) + 50_000
            return [self._tx(TxKind.CALL, self.contract, 0, data, gas) for _ in range(max(1, block_gas // gas))]
        if kind == "deploys":
            data = encode_deploy(self.module, [])
            gas = intrinsic_gas(data) + DEPLOY_BYTE * len(data) + 100_000
            return [self._tx(TxKind.DEPLOY, b"", 0, data, gas) for _ in range(max(1, block_gas // gas))]
        base, per = self.gas_per_iteration(kind)
        data0 = encode_call(kind, self._args(kind, 0))
        n = max(1, (tx_gas - intrinsic_gas(data0) - base) * 97 // 100 // per)  # turns cost about alike: 3% spare
        data = encode_call(kind, self._args(kind, n))
        # The 3% spare above is for what differs from transaction to transaction (longer keys, fresh slots).
        gas = max(tx_gas, intrinsic_gas(data) + self.call_gas(kind, n) + 1_000)
        count = max(1, block_gas // gas)
        return [self._tx(TxKind.CALL, self.contract, 0, data, gas) for _ in range(count)]


@contextmanager
def calibrator(block_gas_limit: int) -> Iterator[Calibrator]:
    with tempfile.TemporaryDirectory(prefix="aichain-gas-calibration-") as tmp:
        cal = Calibrator(Path(tmp), block_gas_limit)
        try:
            yield cal
        finally:
            cal.close()


def measure_kinds(
    kinds: tuple[str, ...] = KINDS,
    block_gas: int = 20_000_000,
    tx_gas: int = 5_000_000,
    repeats: int = 3,
    block_gas_limit: int = 10**10,
) -> list[KindFigure]:
    """ns per gas of each kind, measured in one run: each repeat walks every kind (interleaved, so load
    on the machine falls on all of them alike); a kind's seconds are its median block's, less the
    median empty block's (what every block costs whatever it holds). Seconds are this process's CPU
    time, which other work on a shared machine disturbs far less than wall time."""
    with calibrator(block_gas_limit) as cal:
        runs: dict[str, list[tuple[float, int]]] = {k: [] for k in kinds}
        empty: list[float] = []
        for _ in range(repeats):
            empty.append(cal.commit([], time.process_time)[0])
            for kind in kinds:
                runs[kind].append(cal.commit(cal.kind_txs(kind, block_gas, tx_gas), time.process_time))
    fixed = statistics.median(empty)
    figures = []
    for kind in kinds:
        seconds, gas = sorted(runs[kind], key=lambda r: r[0] / r[1])[len(runs[kind]) // 2]
        figures.append(KindFigure(kind, gas, max(seconds - fixed, 1e-9), 0))
    return figures


def full_block(kind: str, block_gas_limit: int, tx_gas: int = 1_000_000) -> KindFigure:
    """Execute, root and commit one block of `kind` filled to `block_gas_limit` (its transactions use
    `tx_gas` each): the block's wall and CPU seconds and its gas."""
    with calibrator(block_gas_limit) as cal:
        txs = cal.kind_txs(kind, block_gas_limit, min(tx_gas, block_gas_limit))
        cpu = time.process_time()
        seconds, gas = cal.commit(txs)
        cpu = time.process_time() - cpu
    return KindFigure(kind, gas, seconds, len(txs), cpu)
