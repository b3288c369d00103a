"""The vote-gossip announcement on the wire (message type 27): round trip, and hostile payloads refused."""

from __future__ import annotations

from typing import Any

import pytest

from consensus.events import Step
from consensus.vote_gossip import RoundStep, VoteBits
from core import codec
from core.block import VoteType
from core.errors import DecodeError
from node.consensus.vote_gossip import MAX_BITS_BYTES, ROUND_STEP, decode_round_step, encode_round_step


def test_an_announcement_round_trips_through_the_canonical_codec() -> None:
    votes = (VoteBits(3, VoteType.PREVOTE, 0b1011), VoteBits(3, VoteType.PRECOMMIT, 0), VoteBits(1, 1, 1 << 70))
    step = RoundStep(12, 3, int(Step.PREVOTE), True, 1, votes)
    wire = codec.decode(codec.encode(encode_round_step(step)))
    assert decode_round_step(wire) == step
    waiting = RoundStep(5, 0, int(Step.NEW_HEIGHT))
    assert decode_round_step(codec.decode(codec.encode(encode_round_step(waiting)))) == waiting
    assert encode_round_step(waiting)[5] == 0, "no POL round is sent as 0"


def good() -> list[Any]:
    return [ROUND_STEP, 7, 0, int(Step.PROPOSE), 0, 0, [[0, 1, b"\x07"]]]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (0, 26, "wrong type tag"),
        (1, -1, "height"),
        (2, 2**31, "round"),
        (3, 4, "step 4 is unknown"),
        (4, 2, "proposal"),
        (5, "x", "pol round"),
        (6, [[0, 1, b""]] * 5, "at most 4"),
        (6, [[0, 3, b""]], "vote type 3 is unknown"),
        (6, [[0, 1]], "[round, type, bits]"),
        (6, [[0, 1, b"\xff" * (MAX_BITS_BYTES + 1)]], f"at most {MAX_BITS_BYTES} bytes"),
        (6, {"a": 1}, "at most 4"),
    ],
)
def test_a_malformed_announcement_is_refused_with_what_was_wrong(field: int, value: Any, message: str) -> None:
    payload = good()
    payload[field] = value
    with pytest.raises(DecodeError, match=message.replace("[", r"\[").replace("]", r"\]")):
        decode_round_step(payload)
    assert decode_round_step(good()).votes == (VoteBits(0, VoteType.PREVOTE, 7),)
