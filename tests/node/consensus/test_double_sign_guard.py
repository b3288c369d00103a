"""The double-sign guard (node/consensus/double_sign_guard.py): a validator that lost its signing record waits
until N heights pass without its key signing, catches up first, and names another instance."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from core.block import Commit, CommitSig, Vote, VoteType
from core.keys import PrivateKey
from core.validators import Validator, ValidatorSet
from node.consensus.double_sign_guard import DoubleSignGuard
from node.consensus.signer import Signer

CHAIN = 5
KEYS = [PrivateKey.from_seed(bytes([i + 1]) * 32) for i in range(4)]
ME = KEYS[0]
SET = ValidatorSet(tuple(Validator(k.public_key, 10) for k in KEYS))
BLOCK = b"\x0b" * 32
N = 5


def precommit(key: PrivateKey, height: int, round_: int = 0, block: bytes = BLOCK) -> Vote:
    return Vote(VoteType.PRECOMMIT, height, round_, block, key.address).signed_by(key, CHAIN)


def commit(height: int, signers: list[PrivateKey], round_: int = 0) -> Commit:
    sigs = tuple(CommitSig(k.address, precommit(k, height, round_).signature) for k in signers)
    return Commit(height, round_, BLOCK, sigs)


def guard(tmp_path: Path, heads: list[int] | None = None, n: int = N) -> DoubleSignGuard:
    signer = Signer(ME, CHAIN, tmp_path / "sign_state.json")
    return DoubleSignGuard(signer, n, lambda: heads)


def test_a_validator_with_its_record_signs_at_once_and_ignores_its_own_signatures(tmp_path: Path) -> None:
    Signer(ME, CHAIN, tmp_path / "sign_state.json").sign_vote(Vote(VoteType.PRECOMMIT, 40, 0, BLOCK, ME.address))
    g = guard(tmp_path, heads=None)  # no peer has told its head yet: no need to wait, it has its record
    for height in range(36, 41):
        g.observe_commit(commit(height, KEYS))  # its own precommits, which it remembers (up to height 40)
    assert g.may_sign(40, SET)
    assert g.status() == "yes"


def test_a_wiped_validator_catches_up_then_waits_n_heights_without_its_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    heads: list[int] | None = None
    g = DoubleSignGuard(Signer(ME, CHAIN, tmp_path / "sign_state.json"), N, lambda: heads)
    assert g.signer.started_without_state
    assert not g.may_sign(0, SET), "it has heard from no peer: it may be far behind"
    heads = [30, 29]
    assert not g.may_sign(0, SET), "its peers are ahead: it syncs first"
    for height in range(1, 31):  # sync: its key signed up to height 27, before the wipe
        g.observe_commit(commit(height, KEYS if height <= 27 else KEYS[1:]))
    assert not g.may_sign(30, SET)
    assert g.caught_up_at == 30 and g.last_foreign == 27
    assert "waiting until height 32" in g.status()
    for height in (31, 32):
        g.observe_commit(commit(height, KEYS[1:]))
        heads = [height]
    assert not g.may_sign(31, SET)
    assert g.may_sign(32, SET), "N heights (28..32) without its key"
    assert g.status() == "yes"
    assert not [r for r in caplog.records if r.levelno >= logging.CRITICAL], "the old signatures predate it"


def test_votes_of_a_third_of_the_others_at_its_height_also_show_it_caught_up(tmp_path: Path) -> None:
    g = guard(tmp_path, heads=None)  # a peer that never tells its head cannot hold it back forever
    g.observe_vote(Vote(VoteType.PREVOTE, 9, 0, BLOCK, KEYS[1].address))
    assert not g.may_sign(8, SET), "one of three others is not more than a third of their power"
    g.observe_vote(Vote(VoteType.PREVOTE, 9, 0, BLOCK, KEYS[2].address))
    assert g.may_sign(8, SET)


def test_another_instance_signing_after_it_caught_up_is_critical_and_holds_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    g = guard(tmp_path, heads=[10])
    assert g.may_sign(10, SET)  # caught up at 10, nothing foreign
    other = precommit(ME, 12, block=b"\x0c" * 32)  # the other instance's vote, live
    with caplog.at_level(logging.INFO):
        g.observe_vote(other)
        assert not g.may_sign(12, SET)
    critical = [r.getMessage() for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(critical) == 1 and "another instance with this key may be running" in critical[0]
    assert "Stop every other node that uses this validator key" in critical[0]
    assert "signs nothing until 5 heights pass" in critical[0]
    g.observe_commit(commit(13, KEYS))  # and in a commit: still held, one critical line per height
    assert not g.may_sign(17, SET)
    assert g.may_sign(18, SET)


def test_a_validator_restored_from_an_old_backup_waits_too(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    Signer(ME, CHAIN, tmp_path / "sign_state.json").sign_vote(Vote(VoteType.PREVOTE, 20, 0, BLOCK, ME.address))
    g = guard(tmp_path, heads=[50])
    g.observe_commit(commit(20, KEYS))  # height 20: a precommit after its last prevote there: not its own
    assert g.last_foreign == 20
    g.observe_commit(commit(48, KEYS))  # synced: its key signed before the backup was restored
    assert not g.may_sign(50, SET)
    assert g.may_sign(53, SET)
    assert not [r for r in caplog.records if r.levelno >= logging.CRITICAL], "no second instance: an old one"
    g.observe_commit(commit(55, KEYS))  # but after it caught up (at 50): another instance signs now
    assert [r for r in caplog.records if r.levelno >= logging.CRITICAL]
    assert not g.may_sign(55, SET)


def test_its_own_vote_coming_back_is_not_foreign_but_other_bytes_at_its_last_position_are(tmp_path: Path) -> None:
    signer = Signer(ME, CHAIN, tmp_path / "sign_state.json")
    mine = signer.sign_vote(Vote(VoteType.PREVOTE, 7, 1, BLOCK, ME.address))
    g = DoubleSignGuard(signer, N, lambda: [6])
    g.observe_vote(mine)
    g.observe_vote(Vote(VoteType.PREVOTE, 7, 0, b"", ME.address).signed_by(ME, CHAIN))  # earlier: cannot tell
    assert g.last_foreign is None
    g.observe_vote(Vote(VoteType.PREVOTE, 7, 1, b"", ME.address).signed_by(ME, CHAIN))  # same position, other bytes
    assert g.last_foreign == 7


def test_when_the_others_cannot_finalize_without_it_the_wait_says_how_to_proceed(tmp_path: Path) -> None:
    three = ValidatorSet(tuple(Validator(k.public_key, 10) for k in KEYS[:3]))  # quorum 21: the other two hold 20
    g = guard(tmp_path, heads=[5])
    g.observe_commit(commit(5, KEYS[:3]))
    assert not g.may_sign(5, three)
    assert "cannot finalize a height without it" in g.status()
    assert "double_sign_check_height = 0" in g.status()


def test_a_lone_validator_and_a_zero_check_height_never_wait(tmp_path: Path) -> None:
    alone = ValidatorSet((Validator(ME.public_key, 10),))
    assert guard(tmp_path, heads=None).may_sign(0, alone)
    off = guard(tmp_path, heads=None, n=0)
    off.observe_commit(commit(3, KEYS))
    assert off.may_sign(3, SET)


def test_the_check_height_comes_from_node_toml_and_the_environment_and_bad_values_are_refused(tmp_path: Path) -> None:
    from core.errors import ConfigError
    from node.config import load_config

    toml = tmp_path / "node.toml"
    toml.write_text("[consensus]\ndouble_sign_check_height = 25\n")
    assert load_config(toml, environ={}).consensus.double_sign_check_height == 25
    assert load_config(None, environ={}).consensus.double_sign_check_height == 10, "on by default"
    env = {"AICHAIN_CONSENSUS_DOUBLE_SIGN_CHECK_HEIGHT": "0"}
    assert load_config(toml, environ=env).consensus.double_sign_check_height == 0
    for bad, message in (
        ("-1", "must be 0 to 10000 blocks"),
        ("10001", "must be 0 to 10000 blocks"),
        ('"ten"', "not a valid value"),
    ):
        toml.write_text(f"[consensus]\ndouble_sign_check_height = {bad}\n")
        with pytest.raises(ConfigError, match=message):
            load_config(toml, environ={})
