"""Node configuration: consensus timeouts from TOML and environment, checked on load."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ConfigError
from node.config import ConsensusConfig, load_config


def test_consensus_timeouts_come_from_the_file_and_the_environment(tmp_path: Path) -> None:
    toml = tmp_path / "node.toml"
    toml.write_text("[consensus]\ntimeout_propose_s = 5\ntimeout_cap_s = 60.5\n")
    config = load_config(toml, environ={"AICHAIN_CONSENSUS_TIMEOUT_PREVOTE_S": "2.5"})
    assert config.consensus.timeout_propose_s == 5.0
    assert config.consensus.timeout_cap_s == 60.5
    assert config.consensus.timeout_prevote_s == 2.5
    assert config.consensus.timeout_precommit_s == ConsensusConfig().timeout_precommit_s


def test_the_block_timing_comes_from_the_file_and_the_environment(tmp_path: Path) -> None:
    toml = tmp_path / "node.toml"
    toml.write_text("block_time_ms = 700\n[consensus]\nbusy_interval_ms = 150\n")
    config = load_config(toml, environ={"AICHAIN_CONSENSUS_BUSY_TXS": "64"})
    assert config.block_time_ms == 700
    assert (config.consensus.busy_interval_ms, config.consensus.busy_txs) == (150, 64)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("timeout_propose_s = 0", "above 0"),
        ("timeout_prevote_s = -1", "between 0 and 3600"),
        ("timeout_cap_s = 0.5", "at least every round-0 timeout"),
        ('timeout_propose_s = "soon"', "not a valid value"),
        ("timeout_propose_s = true", "must be a number"),
        ("timeout_commit_s = 1", "unknown setting"),
        ("busy_interval_ms = -1", "busy_interval_ms must be 0 to 60000"),
        ("busy_txs = 0", "busy_txs 1 to 1000000"),
    ],
)
def test_bad_consensus_timeouts_are_refused_with_the_reason(tmp_path: Path, text: str, message: str) -> None:
    toml = tmp_path / "node.toml"
    toml.write_text(f"[consensus]\n{text}\n")
    with pytest.raises(ConfigError, match=message):
        load_config(toml, environ={})


def test_the_documented_configuration_loads_setting_for_setting(tmp_path: Path) -> None:
    import re

    docs = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
    example = re.search(r"```toml\n(.*?)```", docs.read_text(), re.S)
    assert example is not None
    path = tmp_path / "node.toml"
    path.write_text(example.group(1))
    config = load_config(config_file=path, environ={})  # an unknown or mistyped setting would raise
    assert config.artifacts.chunk_size == 4194304 and config.artifacts.max_fetches == 4
    assert config.artifacts_path == Path("/srv/aichain/artifacts")
    assert config.rpc.port == 8545 and config.consensus.timeout_cap_s == 30.0


def test_a_relative_artifacts_path_is_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "node.toml"
    path.write_text('datadir = "data"\n[artifacts]\npath = "../blobs"\n')
    config = load_config(config_file=path, environ={})
    assert config.datadir == tmp_path / "conf" / "data" and config.artifacts_path == tmp_path / "blobs"


@pytest.mark.parametrize("value", ["2.5", '"2.5"', "true"])
def test_a_whole_number_setting_refuses_fractions_instead_of_truncating(tmp_path: Path, value: str) -> None:
    toml = tmp_path / "node.toml"
    toml.write_text(f"[mempool]\nmax_per_sender = {value}\n")
    with pytest.raises(ConfigError, match=r"mempool\.max_per_sender"):
        load_config(toml, environ={})
    toml.write_text("[mempool]\nmax_per_sender = 2.0\n")  # a whole number written as a float is fine
    assert load_config(toml, environ={}).mempool.max_per_sender == 2


def test_the_admin_settings_come_from_the_file_and_the_environment(tmp_path: Path) -> None:
    assert load_config(environ={}).rpc.admin_from_loopback is True
    assert load_config(environ={}).rpc.admin_token_file is None
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "node.toml"
    path.write_text('[rpc]\naddr = "0.0.0.0"\nadmin_from_loopback = false\nadmin_token_file = "admin-token"\n')
    config = load_config(config_file=path, environ={})
    assert config.rpc.admin_from_loopback is False
    assert config.rpc.admin_token_file == tmp_path / "conf" / "admin-token"  # relative to the file
    environ = {"AICHAIN_RPC_ADMIN_FROM_LOOPBACK": "true", "AICHAIN_RPC_ADMIN_TOKEN_FILE": "/etc/aichain/token"}
    config = load_config(config_file=path, environ=environ)
    assert config.rpc.admin_from_loopback is True and config.rpc.admin_token_file == Path("/etc/aichain/token")
    with pytest.raises(ConfigError, match=r"rpc\.admin_from_loopback must be true or false"):
        load_config(environ={"AICHAIN_RPC_ADMIN_FROM_LOOPBACK": "sometimes"})
