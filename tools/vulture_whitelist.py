"""Definitions in the floors tools/dead_code.py checks that nothing in the product calls, kept on purpose.

Read by tools/dead_code.py (vulture) as if it were code that uses them. Each line says why the
definition stays; a definition nobody needs goes instead of coming here.
"""

from dataclasses import fields
from logging import LogRecord
from tarfile import TarInfo
from typing import Any

from onnxruntime import SessionOptions

from aichain_node.models import AsyncModels
from consensus.vote_gossip import PeerRoundState
from core.genesis import Genesis
from core.hashing import merkle_proof, verify_merkle_proof
from core.sealing import BaseContext, hpke_open_base
from node.artifacts.replay_cache import ReplayCache
from node.bench.evm_loop import INSTRUCTIONS_PER_ITERATION, count_evm_loop_instructions, evm_loop_bytecode
from node.config import ConsensusConfig
from node.metrics import LiveFamilies
from node.p2p.addrbook import AddressEntry
from node.p2p.metrics import P2PMetrics
from node.p2p.queues import FrameQueue
from storage.artifact_ingest import Ingest
from storage.state_proof import Proof
from vm.system.receipts import UsageReceipt, sign_usage_receipt

# Chunk proofs against a manifest's Merkle root, for verifiers outside the node (docs/artifacts.md).
merkle_proof
verify_merkle_proof

# What a state proof shows for a key: the reading side of the proofs the node serves, for clients.
Proof.proven_value_hash

# The licensee's side of metered licences: docs/contracts.md points here for the receipt format.
sign_usage_receipt
UsageReceipt.call_args

# RFC 9180 as written: OpenBase and the exporter secret are what the RFC's known-answer vectors
# check (tests/core/test_sealing.py); envelopes open through the same setup_base_r.
hpke_open_base
assert "exporter_secret" in {field.name for field in fields(BaseContext)}  # a field, not a class attribute:


def _exporter_secret(context: BaseContext) -> bytes:  # so vulture sees it read
    return context.exporter_secret


# The supply a chain starts with, which block rewards add to: the invariant the chain tests check.
Genesis.total_supply

# The bound on what a peer's claims can make us keep (tests/consensus/test_vote_gossip.py).
PeerRoundState.tracked

# Only the storage tests reach it: the node stores encrypted uploads through add_stream and
# add_files with a seal. It goes with its tests moved to those paths once the SDK's move of
# storage.artifact_io's listing helpers (issue 19) has settled that module.
Ingest.add_encrypted

# How applications register the datasets a version names (docs/models.md, "Provenance"); the CLI
# has no command for it.
AsyncModels.register_dataset

# Settings that libraries read from the objects the SDK hands them: onnxruntime its session
# options (aichain_node.inference), tarfile the mode of each member of an uploaded directory.
SessionOptions.intra_op_num_threads
SessionOptions.log_severity_level
SessionOptions.graph_optimization_level
TarInfo.mode

# --- node/ ----------------------------------------------------------------------------------------

# Settings read by name: a section's fields are set from TOML, AICHAIN_* variables and flags, and
# ConsensusConfig.timeouts() passes every timeout_* field on by name.
ConsensusConfig.timeout_propose_delta_s
ConsensusConfig.timeout_prevote_delta_s
ConsensusConfig.timeout_precommit_delta_s

# prometheus_client calls a registered collector's collect() at each scrape.
LiveFamilies.collect


def _log_record(record: LogRecord) -> tuple[object, ...]:  # node/http_log.py rewrites these, logging reads them
    return record.exc_text, record.levelname, record.levelno


def _onnx_model(model: Any) -> object:  # node/bench/onnx_model.py sets it, onnx serialises it
    return model.ir_version


# Assigned, never read: an error kept without its traceback frees the frames it held (node/txpool/decode.py).
BaseException.__traceback__

# The bounds the tests check: nonces a full replay cache forgot early and the accounts whose floor
# rose (tests/node/artifacts/test_replay_cache.py), the bytes a peer's queue holds
# (tests/p2p/test_misbehaviour.py), dials and failed dials, and why an address's last dial failed
# (tests/p2p/test_handshake.py, tests/p2p/test_peers.py).
ReplayCache.floors
P2PMetrics.dials
P2PMetrics.dial_failures
FrameQueue.queued_bytes
AddressEntry.last_error


def _forgotten(cache: ReplayCache) -> int:  # an instance attribute, so read here
    return cache.forgotten


# The EVM loop of `aichain-node bench vm`, checked against py-evm's own interpreter by
# tests/node/test_evm_loop.py: its shape is what the comparison with our VM is quoted per.
INSTRUCTIONS_PER_ITERATION
evm_loop_bytecode
count_evm_loop_instructions
