"""The replay cache of signed reads (node.artifacts.replay_cache), driven as `ArtifactAccess` drives it, by random
traffic: a signed read is never granted twice while it is good, memory stays within its bounds, and an
account that floods it does not shut out one that reads now and then."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from node.artifacts.replay_cache import ReplayCache

WINDOW = 100


def grant(cache: ReplayCache, now: int, account: bytes, nonce: bytes, timestamp: int) -> bool:
    """`ArtifactAccess.authorize`'s replay rules for a read that is otherwise allowed."""
    expires = timestamp + WINDOW
    if abs(now - timestamp) > WINDOW or cache.seen(account, nonce, now) or cache.below_floor(account, expires):
        return False
    if not cache.room_for(account):
        return False
    cache.add(account, nonce, expires)
    return True


accounts = st.sampled_from([b"a", b"b", b"c", b"d", b"e"])
skews = st.integers(-WINDOW - 5, WINDOW + 5)
reads = st.lists(st.tuples(st.integers(0, 30), accounts, st.integers(0, 7), skews, st.booleans()), max_size=300)


@settings(max_examples=300, deadline=None)
@given(reads, st.integers(1, 8), st.integers(1, 4))
def test_a_signed_read_is_never_granted_twice_and_memory_is_bounded(traffic: list, size: int, share: int) -> None:
    cache = ReplayCache(max_entries=size, per_account=share)
    now = 1_000
    granted: dict[tuple[bytes, bytes, int], int] = {}
    sent: list[tuple[bytes, bytes, int]] = []
    for step, account, nonce, skew, replay in traffic:
        now += step
        if replay and sent:  # the very same signed read again (same account, nonce and timestamp)
            account, raw, timestamp = sent[(step * 7 + nonce) % len(sent)]
        else:
            raw, timestamp = bytes([nonce]), now + skew
            sent.append((account, raw, timestamp))
        if grant(cache, now, account, raw, timestamp):
            key = (account, raw, timestamp)
            assert key not in granted, f"{key} granted twice while good (first at {granted.get(key)}, now {now})"
            granted[key] = now
        assert len(cache) <= size and cache.floors() <= size


def test_a_reader_now_and_then_is_served_while_others_flood() -> None:
    cache = ReplayCache(max_entries=64, per_account=16)
    served = 0
    for now in range(1_000, 3_000):
        for flooder in (b"f1", b"f2", b"f3", b"f4", b"f5"):  # more than the cache holds, all dated late
            grant(cache, now, flooder, now.to_bytes(4, "big"), now + WINDOW)
        if now % 10 == 0:
            served += grant(cache, now, b"honest", now.to_bytes(4, "big"), now)
    assert served == 200  # every one of its reads
    assert len(cache) <= 64 and cache.forgotten > 0
