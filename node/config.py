"""Node configuration: defaults, then a TOML file, then `AICHAIN_*` environment variables, then flags.

Example `node.toml`:

```toml
datadir = "/var/lib/aichain"
genesis = "/etc/aichain/genesis.json"   # default: <datadir>/genesis.json
validator_key = "/etc/aichain/validator.pem"
log_level = "info"

[rpc]
addr = "127.0.0.1"      # RPC binds to loopback unless told otherwise
port = 8545
cors_origins = []
max_body_bytes = 5242880
call_gas_cap = 50000000     # read-only contract calls: gas, wall time, threads, and how many at once
call_time_budget_s = 0.5
call_threads = 2
call_max_per_client = 2
call_max_queued_per_client = 32
call_max_in_flight = 128
admin_from_loopback = true  # admin methods and uploads from this machine; false behind a local reverse proxy
admin_token_file = "/etc/aichain/admin-token"   # optional; mode 0600; admin calls with Authorization: Bearer <it>

[p2p]
addr = "127.0.0.1"
port = 30303
bootnodes = ["<node key hex>@10.0.0.2:30303"]
allow_list = []         # node keys; empty: anyone on our chain
max_inbound = 32
max_outbound = 16

[mempool]
max_txs = 200000
max_per_sender = 1000
ttl_s = 600

[consensus]
timeout_propose_s = 3.0
timeout_cap_s = 30.0
busy_interval_ms = 250          # with busy_txs pending, the next height starts this long after a commit
busy_txs = 200
double_sign_check_height = 10   # without its signing record, wait this many blocks without its key before signing

[artifacts]
path = "/srv/aichain/artifacts"   # default: <datadir>/artifacts
chunk_size = 4194304              # bytes per chunk of newly added artifacts
max_fetches = 4                   # fetches from peers at once
serve_mb_s_per_peer = 0           # upload cap per peer, MB/s (0: none)
max_uploads = 4                   # PUT /artifacts at once; more are answered 503 + Retry-After

[models]
release_keys = true               # post content-key envelopes for buyers of models this node holds keys for
```
Relative paths in the file are relative to the file's own directory.
Environment variables name a key by its path: `AICHAIN_DATADIR`, `AICHAIN_RPC_PORT`,
`AICHAIN_MEMPOOL_MAX_TXS`, `AICHAIN_VALIDATOR_KEY_PASSWORD`, …
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, get_type_hints

from consensus.events import TimeoutConfig
from core.artifact import DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE
from core.errors import ConfigError

DEFAULT_DATADIR = Path("~/.aichain").expanduser()
DEFAULT_DEV_DATADIR = DEFAULT_DATADIR / "dev"
DEFAULT_RPC_PORT = 8545
DEFAULT_P2P_PORT = 30303


@dataclass(frozen=True)
class RpcConfig:
    addr: str = "127.0.0.1"
    port: int = DEFAULT_RPC_PORT
    cors_origins: list[str] = field(default_factory=list)
    max_body_bytes: int = 5 * 1024 * 1024
    max_batch: int = 1000
    # Read-only contract calls (contract_call) are free: each is bounded in gas, in time, and in
    # number, and runs on its own threads, never on the event loop or the block thread.
    call_gas_cap: int = 50_000_000  # gas one call may use (about 50 ms of work; geth's --rpc.gascap)
    call_time_budget_s: float = 0.5  # wall time one call may take from its arrival, waiting included
    call_threads: int = 2  # threads running calls
    call_max_per_client: int = 2  # calls one client address runs at once; more wait their turn
    call_max_queued_per_client: int = 32  # calls of one client running or waiting; one more is refused
    call_max_in_flight: int = 128  # calls running or waiting, all clients together; one more is refused
    # Admin methods and uploads (node.rpc.admin): served to loopback peers when this is true, and to
    # anyone sending the token of `admin_token_file` (read at start; mode 0600).
    admin_from_loopback: bool = True
    admin_token_file: Path | None = None

    def __post_init__(self) -> None:
        if self.call_gas_cap < 100_000 or not 0 < self.call_time_budget_s <= 60:
            raise ConfigError("rpc.call_gas_cap must be at least 100000 and rpc.call_time_budget_s 0 to 60 s")
        limits = (self.call_threads, self.call_max_per_client, self.call_max_queued_per_client, self.call_max_in_flight)
        if min(limits) < 1:
            raise ConfigError("rpc.call_threads and the call_max_* limits must be at least 1")


@dataclass(frozen=True)
class P2PConfig:
    addr: str = "127.0.0.1"
    port: int = DEFAULT_P2P_PORT
    bootnodes: list[str] = field(default_factory=list)  # "nodekeyhex@host:port" or "host:port"
    allow_list: list[str] = field(default_factory=list)  # node keys (hex); empty: anyone on our chain
    max_inbound: int = 32
    max_outbound: int = 16
    max_pending_handshakes: int = 64  # inbound connections not through the handshake yet, in all ...
    max_pending_per_ip: int = 8  # ... and from one IP; beyond either, the oldest of them is dropped
    handshake_timeout_s: float = 3.0  # TLS and the Hello must finish within this
    sync_answer_bytes: int = 8 * 1024 * 1024  # most block bytes sent in one answer to a syncing peer
    # Re-verify each transaction signature of a block that comes with a verified commit (the commit's
    # signatures are verified either way; see docs/network.md, "Block sync")
    sync_verify_tx_signatures: bool = False
    enabled: bool = True


@dataclass(frozen=True)
class MempoolConfig:
    max_txs: int = 200_000
    max_bytes: int = 128 * 1024 * 1024
    max_per_sender: int = 1_000
    ttl_s: int = 600


_TIMEOUTS = TimeoutConfig()
# With this many transactions pending, the next height starts this long after the previous block
# was written (docs/consensus.md, "Block time").
BUSY_INTERVAL_MS = 250
BUSY_TXS = 200


@dataclass(frozen=True)
class ConsensusConfig:
    """Round timeouts in seconds (`timeout_` + a field of `TimeoutConfig`, whose defaults they keep),
    and the double-sign guard: a validator whose key signed one of the last `double_sign_check_height`
    blocks without this node remembering it (its sign state was lost) waits until that many blocks
    pass without its key before it signs (0: never wait; see node/consensus/double_sign_guard.py).
    Between heights (node/consensus/next_height.py): with `busy_txs` transactions pending, the next
    height starts `busy_interval_ms` after the previous block was written."""

    timeout_propose_s: float = _TIMEOUTS.propose_s
    timeout_propose_delta_s: float = _TIMEOUTS.propose_delta_s
    timeout_prevote_s: float = _TIMEOUTS.prevote_s
    timeout_prevote_delta_s: float = _TIMEOUTS.prevote_delta_s
    timeout_precommit_s: float = _TIMEOUTS.precommit_s
    timeout_precommit_delta_s: float = _TIMEOUTS.precommit_delta_s
    timeout_cap_s: float = _TIMEOUTS.cap_s
    double_sign_check_height: int = 10
    busy_interval_ms: int = BUSY_INTERVAL_MS
    busy_txs: int = BUSY_TXS

    def timeouts(self) -> TimeoutConfig:
        return TimeoutConfig(**{f.name.removeprefix("timeout_"): getattr(self, f.name) for f in _timeout_fields()})

    def __post_init__(self) -> None:
        for f in _timeout_fields():
            value = getattr(self, f.name)
            if not value >= 0 or value > 3600:
                raise ConfigError(f"consensus.{f.name} must be between 0 and 3600 s, not {value}")
        if min(self.timeout_propose_s, self.timeout_prevote_s, self.timeout_precommit_s) <= 0:
            raise ConfigError("consensus timeouts at round 0 must be above 0 s")
        if self.timeout_cap_s < max(self.timeout_propose_s, self.timeout_prevote_s, self.timeout_precommit_s):
            raise ConfigError("consensus.timeout_cap_s must be at least every round-0 timeout")
        if not 0 <= self.busy_interval_ms <= 60_000 or not 1 <= self.busy_txs <= 1_000_000:
            raise ConfigError(
                f"consensus.busy_interval_ms must be 0 to 60000 ms and busy_txs 1 to 1000000, "
                f"not {self.busy_interval_ms} and {self.busy_txs}"
            )
        if not 0 <= self.double_sign_check_height <= MAX_DOUBLE_SIGN_CHECK_HEIGHT:
            raise ConfigError(
                f"consensus.double_sign_check_height must be 0 to {MAX_DOUBLE_SIGN_CHECK_HEIGHT} blocks, "
                f"not {self.double_sign_check_height}"
            )


MAX_DOUBLE_SIGN_CHECK_HEIGHT = 10_000


def _timeout_fields() -> list[Any]:
    return [f for f in fields(ConsensusConfig) if f.name.startswith("timeout_")]


@dataclass(frozen=True)
class ArtifactsConfig:
    path: Path | None = None  # default <datadir>/artifacts
    chunk_size: int = DEFAULT_CHUNK_SIZE
    max_fetches: int = 4  # fetches from peers running at once
    serve_mb_s_per_peer: float = 0.0  # what one peer is sent at most, MB/s (0: no limit)
    max_uploads: int = 4  # PUT /artifacts bodies read at once (each holds an ingest thread); more get 503
    upload_idle_timeout_s: float = 15.0  # an upload body with no byte for this long is cut (408)
    upload_min_bytes_s: int = 16 * 1024  # ... and one slower than this on average after the grace time
    upload_grace_s: float = 10.0

    def __post_init__(self) -> None:
        if not MIN_CHUNK_SIZE <= self.chunk_size <= MAX_CHUNK_SIZE:
            raise ConfigError(f"artifacts.chunk_size must be {MIN_CHUNK_SIZE} to {MAX_CHUNK_SIZE} bytes")
        if self.max_fetches < 1 or self.serve_mb_s_per_peer < 0:
            raise ConfigError("artifacts.max_fetches must be at least 1 and serve_mb_s_per_peer at least 0")
        if self.max_uploads < 1 or self.upload_min_bytes_s < 1:
            raise ConfigError("artifacts.max_uploads and upload_min_bytes_s must be at least 1")
        if not 0 < self.upload_idle_timeout_s <= 3600 or not 0 <= self.upload_grace_s <= 3600:
            raise ConfigError(
                "artifacts.upload_idle_timeout_s must be above 0 and upload_grace_s at least 0 (both at most 3600 s)"
            )


@dataclass(frozen=True)
class ModelsConfig:
    # When a licence to a private model is bought, and this node holds the model's content key and is
    # its named releaser, seal the key to the buyer and post the envelope (signed with the node key).
    release_keys: bool = True


@dataclass(frozen=True)
class NodeConfig:
    datadir: Path = DEFAULT_DATADIR
    genesis: Path | None = None
    validator_key: Path | None = None
    validator_key_password: str | None = None
    node_key: Path | None = None  # P2P identity; default <datadir>/node_key.pem, created on first start
    dev: bool = False
    log_level: str = "info"
    block_time_ms: int | None = None  # overrides the genesis block time (dev and benchmarks)
    rpc: RpcConfig = field(default_factory=RpcConfig)
    p2p: P2PConfig = field(default_factory=P2PConfig)
    mempool: MempoolConfig = field(default_factory=MempoolConfig)
    consensus: ConsensusConfig = field(default_factory=ConsensusConfig)
    artifacts: ArtifactsConfig = field(default_factory=ArtifactsConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)

    @property
    def genesis_path(self) -> Path:
        return self.genesis or self.datadir / "genesis.json"

    @property
    def validator_key_path(self) -> Path:
        return self.validator_key or self.datadir / "validator.pem"

    @property
    def node_key_path(self) -> Path:
        return self.node_key or self.datadir / "node_key.pem"

    @property
    def chaindata(self) -> Path:
        return self.datadir / "chaindata"

    @property
    def artifacts_path(self) -> Path:
        return self.artifacts.path or self.datadir / "artifacts"


def _coerce(value: Any, kind: Any, where: str) -> Any:
    text = str(kind)
    try:
        if is_dataclass(kind):
            if not isinstance(value, dict):
                raise ConfigError(f"{where} must be a table")
            return _build(kind, value, where)
        if "Path" in text:
            return None if value is None else Path(str(value)).expanduser()
        if text.startswith("list"):
            if isinstance(value, str):
                return [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, list):
                raise ConfigError(f"{where} must be a list")
            return [str(v) for v in value]
        if "bool" in text:
            if isinstance(value, str):
                if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ConfigError(f"{where} must be true or false, not {value!r}")
                return value.lower() in ("1", "true", "yes")
            return bool(value)
        if "float" in text:
            if isinstance(value, bool) or value is None:
                raise ConfigError(f"{where} must be a number")
            return float(value)
        if "int" in text:
            if value is None:
                return None
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ConfigError(f"{where} must be a whole number, not {value!r}")
            return int(value)
        return None if value is None else str(value)
    except ValueError as exc:
        raise ConfigError(f"{where}: {value!r} is not a valid value ({exc})") from exc


def _build(cls: Any, values: dict[str, Any], where: str) -> Any:
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"unknown setting(s) {sorted(unknown)} in {where or 'config'}; known: {sorted(known)}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}".lstrip(".")) for k, v in values.items()}
    return cls(**kwargs)


def _merge(base: Any, values: dict[str, Any], where: str) -> Any:
    """`base` (a settings dataclass) with `values` in place of its fields, each coerced to the field's type."""
    hints = get_type_hints(type(base))
    known = {f.name for f in fields(base)}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"unknown setting(s) {sorted(unknown)} in {where or 'config'}; known: {sorted(known)}")
    updates: dict[str, Any] = {}
    for key, value in values.items():
        current = getattr(base, key)
        if is_dataclass(current) and isinstance(value, dict):
            updates[key] = _merge(current, value, f"{where}.{key}".lstrip("."))
        else:
            updates[key] = _coerce(value, hints[key], f"{where}.{key}".lstrip("."))
    return replace(base, **updates)


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    sections = {f.name for f in fields(NodeConfig) if is_dataclass(f.default_factory)}
    for name, value in environ.items():
        if not name.startswith("AICHAIN_") or name in ("AICHAIN_RPC", "AICHAIN_KEYSTORE", "AICHAIN_PASSWORD"):
            continue
        key = name[len("AICHAIN_") :].lower()
        section, _, rest = key.partition("_")
        if section in sections and rest:
            out.setdefault(section, {})[rest] = value
        elif key in {f.name for f in fields(NodeConfig)}:
            out[key] = value
    return out


def load_config(
    config_file: Path | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> NodeConfig:
    """Defaults < TOML file < environment < `overrides` (from flags; None values are ignored)."""
    config = NodeConfig()
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    if overrides.get("dev"):
        config = replace(config, datadir=DEFAULT_DEV_DATADIR, dev=True)
    if config_file is not None:
        try:
            doc = tomllib.loads(Path(config_file).read_text())
        except FileNotFoundError as exc:
            raise ConfigError(f"no config file at {config_file}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {config_file} is not valid TOML: {exc}") from exc
        here = Path(config_file).resolve().parent
        paths = [
            (doc, "datadir"),
            (doc, "genesis"),
            (doc, "validator_key"),
            (doc, "node_key"),
            (doc.get("artifacts"), "path"),
            (doc.get("rpc"), "admin_token_file"),
        ]
        for table, key in paths:  # relative to the file's directory
            if not isinstance(table, dict):
                continue
            value = table.get(key)
            if isinstance(value, str) and not Path(value).expanduser().is_absolute():
                table[key] = str((here / value).resolve())
        config = _merge(config, doc, "")
    config = _merge(config, _env_overrides(dict(os.environ if environ is None else environ)), "environment")
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        section, _, rest = key.partition(".")
        if rest:
            nested.setdefault(section, {})[rest] = value
        else:
            nested[key] = value
    merged: NodeConfig = _merge(config, nested, "flags")
    return merged
