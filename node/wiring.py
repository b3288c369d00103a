"""Where a test may put a misbehaving part in place of one of the node's, at wiring time.

As `Node` assembles itself it hands each of the parts below to its `Wiring` and uses what comes
back; the default gives back the part unchanged. Tests of a Byzantine validator (one that
equivocates, one that dies right after a vote, one a height behind, one that serves damaged
chunks) subclass it, as CometBFT's byzantine_test.go overrides `doPrevote`: production code and
configuration hold no switch for any of it.

A real `aichain-node start` process takes its wiring from the Python file named by the
environment variable `AICHAIN_TEST_WIRING` (`load_wiring`): the file's `wiring(config)` returns
a `Wiring`. Only the test harness sets the variable (tests/faults.py); without it the node is
wired as shipped.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import ConfigError

if TYPE_CHECKING:
    from node.config import NodeConfig
    from node.consensus.double_sign_guard import DoubleSignGuard
    from node.consensus.ports import Broadcast, Ledger
    from node.consensus.signer import Signer

ENV = "AICHAIN_TEST_WIRING"
ChunkReader = Callable[[bytes], bytes]  # chunk id -> its bytes as stored


class Wiring:
    """The parts a test may replace; each method gets the node's own and returns the one to use."""

    def consensus_broadcast(self, broadcast: Broadcast, signer: Signer | None, ledger: Ledger) -> Broadcast:
        """Where the consensus driver sends what it signed (the network, or nowhere without P2P)."""
        return broadcast

    def consensus_ledger(self, ledger: Ledger) -> Ledger:
        """The chain as the consensus driver builds, executes and commits blocks on it."""
        return ledger

    def double_sign_guard(self, guard: DoubleSignGuard) -> DoubleSignGuard | None:
        """A validator's double-sign guard (None: it signs whatever its record allows)."""
        return guard

    def served_chunks(self, read: ChunkReader) -> ChunkReader:
        """How artifact chunks are read to be served to peers."""
        return read


def load_wiring(environ: Mapping[str, str], config: NodeConfig) -> Wiring:
    """The wiring the file named by `AICHAIN_TEST_WIRING` gives for `config`; the shipped one without it."""
    path = environ.get(ENV)
    if not path:
        return Wiring()
    spec = importlib.util.spec_from_file_location("aichain_test_wiring", Path(path))
    if spec is None or spec.loader is None or not Path(path).is_file():
        raise ConfigError(f"{ENV} names {path}, which is not a Python file; unset it to run the node as shipped")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    wiring = module.wiring(config)
    if not isinstance(wiring, Wiring):
        raise ConfigError(f"{path}: wiring(config) returned {type(wiring).__name__}, not a node.wiring.Wiring")
    return wiring
