"""A validator that may have lost its signing record does not sign until the chain says it is safe.

`node/consensus/signer.py` keeps what this validator signed last, and refuses anything that would
conflict with it. That record is lost when an operator wipes the data directory (keeping the
keys and node.toml, a common recovery step) or restores it from an old backup; and it never
knew about another instance running with the same key. Either way the validator could sign
something different at a (height, round, step) its key already signed: equivocation, which
gets it removed from the validator set and, with others, can stall the chain.

Rules (as CometBFT's `double_sign_check_height`, N below, `[consensus] double_sign_check_height`):

- A signature of this key that the signer cannot have made (`Signer.could_have_signed`) is
  *foreign*: found in a commit this node stores or imports (each block's commit, and the
  previous height's commit it carries), or in a vote that reaches it.
- The validator signs only once N heights have been committed after the last height with a
  foreign signature. At start it looks at the last N commits it holds.
- A validator that starts without its record (no sign state) also waits until it has caught
  up: votes of more than 1/3 of the other validators' power reached it at the height it
  decides, or every connected peer told its head and none is more than one block ahead.
  Only then does it know which recent commits carry its key.
- A foreign signature at a height decided after it caught up means another instance with
  this key is running now. It is logged as critical, with what to do. (A validator with its
  record learns when it caught up the same way, but signs meanwhile: its record protects it.)
- A validator that is the whole validator set has nobody to wait for, and never waits.
- N = 0 turns the guard off.

While it waits, the node follows consensus and commits blocks, but signs nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from consensus.events import SignProposal, SignVote
from core.block import Commit, Vote, VoteType
from core.keys import address_hex
from core.validators import ValidatorSet
from node.consensus.signer import STEP_PRECOMMIT, Signer

log = logging.getLogger("aichain.consensus")

PeerHeads = Callable[[], list[int] | None]  # heads announced by the connected peers (None: some not yet)
RETRY_S = 0.25
MAX_WITHHELD = 8


class DoubleSignGuard:
    def __init__(self, signer: Signer, check_height: int, peer_heads: PeerHeads | None = None) -> None:
        self.signer = signer
        self.check_height = check_height
        self.peer_heads = peer_heads or (lambda: [])
        self.off = check_height == 0
        self.must_catch_up = signer.started_without_state  # before it signs; others learn it as they go
        self.caught_up_at: int | None = None  # our head when we first knew we had caught up
        self.last_foreign: int | None = None  # the latest height at which a foreign signature was seen
        self._voters: tuple[int, set[bytes]] = (0, set())  # other validators heard at one height
        self._held: str | None = None  # why signing is held, as last logged
        self._critical_at: int | None = None

    # --- what the chain and the network show ------------------------------------------------------

    def observe_commit(self, commit: Commit | None) -> None:
        """A commit this node stores or received: does it carry a foreign signature of our key?"""
        if self.off or commit is None:
            return
        me = self.signer.address
        for sig in commit.signatures:
            if sig.validator == me:
                vote = commit.precommit_of(sig)
                if not self.signer.could_have_signed(vote.height, vote.round, STEP_PRECOMMIT, vote.signing_payload()):
                    self._foreign(commit.height, "a commit")
                return

    def observe_vote(self, vote: Vote) -> None:
        """A vote with a valid signature that reached us from a peer."""
        if self.off:
            return
        if vote.validator == self.signer.address:
            if not self.signer.could_have_signed_vote(vote):
                kind = "prevote" if vote.vote_type == VoteType.PREVOTE else "precommit"
                self._foreign(vote.height, f"a {kind} at round {vote.round}")
            return
        height, voters = self._voters
        if vote.height != height:
            self._voters = (vote.height, {vote.validator})
        else:
            voters.add(vote.validator)

    def _foreign(self, height: int, where: str) -> None:
        self.last_foreign = height if self.last_foreign is None else max(self.last_foreign, height)
        me = address_hex(self.signer.address)
        if self.caught_up_at is not None and height > self.caught_up_at + 1:
            if self._critical_at != height:
                self._critical_at = height
                log.critical(
                    "validator %s signed %s at height %d that this node did not sign: another instance with this "
                    "key may be running. Stop every other node that uses this validator key (two instances "
                    "double-sign, and the validator is removed from the set); this node signs nothing until %d "
                    "heights pass without that key signing",
                    me,
                    where,
                    height,
                    self.check_height,
                )
        elif self._held is None:
            log.warning(
                "validator %s signed %s at height %d that this node has no record of (its sign state is "
                "missing or older, as after a wipe or a restore; if another node may still run with this "
                "key, stop it): it signs nothing until %d heights pass without that key signing "
                "([consensus] double_sign_check_height)",
                me,
                where,
                height,
                self.check_height,
            )

    # --- the decision ---------------------------------------------------------------------------------

    def may_sign(self, head: int, validators: ValidatorSet) -> bool:
        """Whether the validator may sign at height `head` + 1 (logged when the answer changes)."""
        if self.off:
            return True
        me = self.signer.address
        if me in validators.by_address and len(validators) == 1:
            return self._hold(None, head)
        if self.caught_up_at is None and self._caught_up(head, validators):
            self.caught_up_at = head
            if self.must_catch_up:
                log.info(
                    "caught up at height %d; it signs once the last %d heights carry no signature of its key "
                    "it did not make",
                    head,
                    self.check_height,
                )
        if self.caught_up_at is None and self.must_catch_up:
            return self._hold("catching up with its peers first (it started without its sign state)", head)
        if self.last_foreign is not None and head - self.last_foreign < self.check_height:
            others = sum(v.power for v in validators.validators if v.address != me)
            if others < validators.quorum():
                why = (
                    f"its key signed height {self.last_foreign}, unknown to this node, and the other validators "
                    "cannot finalize a height without it, so the heights it waits for will not come: if you are "
                    "sure no other instance of this key runs and that this node signed nothing since, set "
                    "[consensus] double_sign_check_height = 0 for one start"
                )
            else:
                why = (
                    f"its key signed height {self.last_foreign}, unknown to this node: waiting until height "
                    f"{self.last_foreign + self.check_height} is committed"
                )
            return self._hold(why, head)
        return self._hold(None, head)

    def _caught_up(self, head: int, validators: ValidatorSet) -> bool:
        height, voters = self._voters
        if height == head + 1:
            power = sum(validators.by_address[a].power for a in voters if a in validators.by_address)
            mine = validators.by_address.get(self.signer.address)
            if power * 3 > validators.total_power - (0 if mine is None else mine.power):
                return True
        heads = self.peer_heads()
        return max(heads) <= head + 1 if heads else False

    def _hold(self, why: str | None, head: int) -> bool:
        if why != self._held:
            if why is not None:
                log.warning("not signing at height %d: %s", head + 1, why)
            elif self._held is not None:
                log.info("signing again from height %d", head + 1)
            self._held = why
        return why is None

    def status(self) -> str:
        return "yes" if self._held is None else f"held: {self._held}"


class Withheld:
    """The machine's requests to sign that the guard held back. They are kept (the last
    `MAX_WITHHELD`) and looked at every `RETRY_S` (`wake`); once the guard lets go, those of the
    round the machine is still in are carried out. Dropping them instead deadlocks a network whose
    validators all start without their sign state: every prevote of round 0 is held, and without
    2f+1 prevotes nobody ever times out to the next round."""

    def __init__(self, guard: DoubleSignGuard, wake: Callable[[], None]) -> None:
        self.guard = guard
        self._wake = wake
        self._requests: list[SignProposal | SignVote] = []
        self._timer: asyncio.TimerHandle | None = None

    def hold(self, action: SignProposal | SignVote, head: int, validators: ValidatorSet) -> bool:
        """Keep `action` if the guard holds (True), and look again soon."""
        if self.guard.may_sign(head, validators):
            return False
        self._requests = [*self._requests[-(MAX_WITHHELD - 1) :], action]
        self._schedule()
        return True

    def release(self, head: int, validators: ValidatorSet, height: int, round_: int) -> list[SignProposal | SignVote]:
        """The kept requests of (height, round_) to carry out now, if the guard lets go."""
        self._timer = None
        if not self._requests:
            return []
        if not self.guard.may_sign(head, validators):
            self._schedule()
            return []
        due = [a for a in self._requests if _position(a) == (height, round_)]
        self._requests = []
        return due

    def clear(self) -> None:
        """A new height: what was kept is for a height gone (a late wake finds nothing to do)."""
        self._requests, self._timer = [], None

    def _schedule(self) -> None:
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(RETRY_S, self._wake)


def _position(action: SignProposal | SignVote) -> tuple[int, int]:
    if isinstance(action, SignProposal):
        return action.proposal.height, action.proposal.round
    return action.vote.height, action.vote.round
