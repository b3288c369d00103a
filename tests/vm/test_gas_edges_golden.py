"""Running out of gas at every point of a call gives the same outcome and gas used as recorded.

The interpreter's loop keeps its gas count in a local and meters some instructions inline (building
a list, indexing by a constant, `*` and `//`, builtins): exactly where a call stops and how much
gas its receipt says it used are consensus. A function that builds, indexes, multiplies, divides,
stores and reads is run with gas budgets from nothing to enough (in steps under its smallest charges); the faults,
results and gas used fold into a digest that must equal the one recorded.
"""

from __future__ import annotations

from core.hashing import sha256
from vm.compiler import compile_contract
from vm.contracts import CallContext, install, run_call
from vm.interpreter import VMError
from vm.state import StateView

SOURCE = """
data: Map[str, list]
counter: int

@public
def run(n: int) -> int:
    total = 0
    xs = [n, n * 2, n // 3, [n]]
    k = "a"
    w = {k: {k: {k: {k: {k: {k: [[[n]]]}}}}}}
    for i in range(n):
        ys = [i, xs[1], xs[2] * i, total // (i + 1), xs[3]]
        total = total + ys[2] + len(ys) + ys[0] * 3 + min(i, 2)
        data["k"] = ys
        z = data["k"]
        total += z[1] + z[4][0]
        counter += 1
        # `ops.index` charges its dict lookups (and `x[0]`) against the gas of the loop's last sync: more
        # than the loop counts here, so a budget can run out in between.
        total += w[k][k][k][k][k][k][0][0][0]
    return total + counter
"""
GOLDEN = "460e1d23dd4d17fd597e4dd7bea2f1f2b14e3b57beceeb92ca5e940e39638b7b"
STEP = 13  # under the smallest charge in question (a list of 5 items: 25 gas)


class _Empty:
    def get(self, key: bytes) -> bytes | None:
        return None


def outcomes() -> tuple[int, str]:
    """(the gas a whole run uses, the digest of the outcome at every budget up to it)."""
    module = compile_contract(SOURCE)
    address, who = b"\x0c" * 20, b"\x01" * 20
    digest = b""
    budget, full = 0, None
    while full is None or budget <= full + STEP:
        view = StateView(_Empty())
        install(view, address, module)
        ctx = CallContext(who, 7, 1_000)
        try:
            result, used, _ = run_call(view, ctx, who, address, "run", [2], 0, budget)
            outcome = f"{result} {used}"
            full = used if full is None else full
        except VMError as exc:
            outcome = f"{exc} {exc.gas_used}"
        digest = sha256(digest + outcome.encode())
        budget += STEP if full is None or budget < full else 1
    return full, digest.hex()


def test_out_of_gas_at_every_point_keeps_its_outcome_and_gas_used() -> None:
    full, digest = outcomes()
    assert full > 20_000  # the run gets past its storage writes
    assert digest == GOLDEN, digest


if __name__ == "__main__":  # prints the digest to record
    print(outcomes())
