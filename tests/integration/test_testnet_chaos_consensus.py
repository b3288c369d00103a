"""Chaos on a 4-validator testnet: kill -9 random validators (every third time two, breaking the
quorum), restart them, and measure how long finalization takes to resume once the quorum is back.
A soak test (minutes): `pytest -m soak`."""

from __future__ import annotations

import random
import statistics
import time
from pathlib import Path

import pytest

from tests.integration.testnet_support import Testnet

KILLS = 15
RESUME_BOUND_S = 10.0


@pytest.mark.soak
def test_finalization_resumes_within_ten_seconds_of_the_quorum_returning(tmp_path: Path) -> None:
    rng = random.Random(18)
    resumed: dict[bool, list[float]] = {True: [], False: []}  # quorum broken -> seconds to the next height
    with Testnet(tmp_path, validators=4) as net:
        net.wait_height(range(4), 3, 30)
        for kill in range(KILLS):
            victims = rng.sample(range(4), 2 if kill % 3 == 2 else 1)
            net.kill(*victims)
            survivors = [i for i in range(4) if i not in victims]
            time.sleep(rng.uniform(0.3, 3.0))
            top = max(net.heights(survivors).values())
            net.start(*victims)
            back = time.monotonic()
            net.wait_height(range(4), top + 1, RESUME_BOUND_S)
            resumed[len(victims) == 2].append(time.monotonic() - back)
        net.assert_same_chain(range(4))
    for broken, times in resumed.items():
        what = "the quorum back, all four finalized" if broken else "the killed one back, all four finalized"
        print(
            f"{len(times)} kills, {what} the next height after min {min(times):.1f} s, "
            f"median {statistics.median(times):.1f} s, max {max(times):.1f} s"
        )
