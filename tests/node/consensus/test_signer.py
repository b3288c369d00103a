from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.block import Vote, VoteType
from core.errors import AichainError
from core.keys import DOMAIN_VOTE, PrivateKey, verify
from core.proposal import Proposal
from node.consensus.signer import KEPT_VOTES, DoubleSignRefused, Signer

KEY = PrivateKey.from_seed(b"\x07" * 32)
CHAIN = 5


def vote(height: int, round_: int, kind: VoteType, block: bytes) -> Vote:
    return Vote(kind, height, round_, block, KEY.address)


def test_signatures_verify_and_repeat_identically(tmp_path: Path) -> None:
    signer = Signer(KEY, CHAIN, tmp_path / "s.json")
    first = signer.sign_vote(vote(3, 0, VoteType.PREVOTE, b"\x01" * 32))
    assert verify(KEY.public_key, first.signature, DOMAIN_VOTE, CHAIN, first.signing_payload())
    again = signer.sign_vote(vote(3, 0, VoteType.PREVOTE, b"\x01" * 32))
    assert again.signature == first.signature


def test_conflicting_or_earlier_signatures_are_refused_even_after_restart(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    signer = Signer(KEY, CHAIN, path)
    signer.sign_proposal(Proposal(3, 1, -1, b"\x02" * 32, KEY.address))
    signer.sign_vote(vote(3, 1, VoteType.PREVOTE, b"\x02" * 32))
    restarted = Signer(KEY, CHAIN, path)  # as after kill -9: only the file survives
    assert restarted.last_signed() == (3, 1, 2)
    with pytest.raises(DoubleSignRefused):
        restarted.sign_vote(vote(3, 1, VoteType.PREVOTE, b""))  # same position, other block: equivocation
    with pytest.raises(DoubleSignRefused):
        restarted.sign_proposal(Proposal(3, 1, -1, b"\x03" * 32, KEY.address))  # earlier step
    with pytest.raises(DoubleSignRefused):
        restarted.sign_vote(vote(2, 9, VoteType.PRECOMMIT, b"\x02" * 32))  # earlier height
    later = restarted.sign_vote(vote(3, 1, VoteType.PRECOMMIT, b"\x02" * 32))
    assert later.signature
    assert Signer(KEY, CHAIN, path).last_signed() == (3, 1, 3)


def test_a_corrupt_sign_state_stops_signing_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text("{not json")
    with pytest.raises(AichainError, match="double-signing"):
        Signer(KEY, CHAIN, path)


def test_the_lock_survives_a_restart_for_the_rest_of_the_height(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    signer = Signer(KEY, CHAIN, path)
    signer.sign_vote(vote(8, 0, VoteType.PREVOTE, b"\x05" * 32))
    assert signer.lock_for(8) is None
    signer.sign_vote(vote(8, 0, VoteType.PRECOMMIT, b"\x05" * 32))  # locks on block 5 in round 0
    signer.sign_vote(vote(8, 1, VoteType.PREVOTE, b""))  # later signatures keep the lock
    restarted = Signer(KEY, CHAIN, path)
    assert restarted.lock_for(8) == (0, b"\x05" * 32)
    assert restarted.lock_for(9) is None
    restarted.sign_vote(vote(9, 0, VoteType.PREVOTE, b""))  # a new height drops it
    assert Signer(KEY, CHAIN, path).lock_for(8) is None


def test_the_votes_of_the_height_are_rebuilt_after_a_restart_to_be_sent_again(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    signer = Signer(KEY, CHAIN, path)
    assert signer.votes_at(6) == []
    prevote = signer.sign_vote(vote(6, 2, VoteType.PREVOTE, b""))
    precommit = signer.sign_vote(vote(6, 2, VoteType.PRECOMMIT, b""))
    signer.sign_vote(vote(6, 2, VoteType.PRECOMMIT, b""))  # the same signature again: kept once
    rebuilt = Signer(KEY, CHAIN, path).votes_at(6)
    assert rebuilt == [prevote, precommit]  # not only the last: the prevote may never have left
    assert all(v.verify(KEY.public_key, CHAIN) for v in rebuilt)
    assert Signer(KEY, CHAIN, path).votes_at(5) == []
    signer.sign_proposal(Proposal(7, 0, -1, b"\x02" * 32, KEY.address))
    assert Signer(KEY, CHAIN, path).votes_at(7) == []  # a new height; a proposal is not a vote
    path.write_text('{"height": 8, "round": 0, "step": 3, "payload": "00", "signature": "' + "00" * 64 + '"}')
    assert Signer(KEY, CHAIN, path).votes_at(8) == []  # bytes that are no vote: nothing to resend


def test_a_record_written_before_votes_were_kept_still_gives_its_last_vote(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    signed = Signer(KEY, CHAIN, path).sign_vote(vote(4, 1, VoteType.PRECOMMIT, b""))
    doc = json.loads(path.read_text())
    del doc["votes"]
    path.write_text(json.dumps(doc))
    assert Signer(KEY, CHAIN, path).votes_at(4) == [signed]


def test_the_kept_votes_are_bounded_and_the_latest_stay(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    signer = Signer(KEY, CHAIN, path)
    for round_ in range(KEPT_VOTES):
        for kind in (VoteType.PREVOTE, VoteType.PRECOMMIT):
            signer.sign_vote(vote(9, round_, kind, b""))
    kept = Signer(KEY, CHAIN, path).votes_at(9)
    assert len(kept) == KEPT_VOTES
    assert (kept[0].round, kept[-1].round) == (KEPT_VOTES // 2, KEPT_VOTES - 1)


def test_which_signatures_of_its_key_the_signer_can_have_made(tmp_path: Path) -> None:
    """The double-sign guard asks this of every signature of its key it sees on the chain."""
    path = tmp_path / "s.json"
    fresh = Signer(KEY, CHAIN, path)
    assert fresh.started_without_state
    assert not fresh.could_have_signed_vote(vote(1, 0, VoteType.PREVOTE, b""))
    made = fresh.sign_vote(vote(6, 2, VoteType.PREVOTE, b"\x01" * 32))
    restarted = Signer(KEY, CHAIN, path)
    assert not restarted.started_without_state
    assert restarted.could_have_signed_vote(made)
    assert restarted.could_have_signed_vote(vote(6, 1, VoteType.PRECOMMIT, b"\x09" * 32))  # earlier: unknowable
    assert not restarted.could_have_signed_vote(vote(6, 2, VoteType.PREVOTE, b""))  # other bytes, same position
    assert not restarted.could_have_signed_vote(vote(6, 2, VoteType.PRECOMMIT, b"\x01" * 32))  # later
    assert not restarted.could_have_signed_vote(vote(7, 0, VoteType.PREVOTE, b"\x01" * 32))
