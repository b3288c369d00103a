"""Random programs of the contract subset give the same result, gas, storage and events in two
separate processes, and always stop within their gas."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vm.compiler import compile_contract
from vm.contracts import CallContext, install, run_call
from vm.interpreter import VMError
from vm.state import StateView

ROOT = Path(__file__).resolve().parents[2]
GAS = 200_000
NAMES = ["a", "b", "c"]


def expressions() -> st.SearchStrategy[str]:
    leaves = st.one_of(
        st.integers(-(2**70), 2**70).map(str),
        st.sampled_from(NAMES),
        st.just("n"),
        st.just("store[a % 3]"),
        st.just("counter"),
    )

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(
                inner, st.sampled_from(["+", "-", "*", "//", "%", "&", "|", "^", "<", "==", "and", "or"]), inner
            ).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            inner.map(lambda e: f"(-{e})"),
            st.tuples(inner, inner).map(lambda t: f"min({t[0]}, {t[1]})"),
            inner.map(lambda e: f"len(str({e}))"),
            st.tuples(inner, inner).map(lambda t: f"[{t[0]}, {t[1]}][1]"),
        )

    return st.recursive(leaves, extend, max_leaves=6)


def statements(depth: int = 0) -> st.SearchStrategy[str]:
    simple = st.one_of(
        st.tuples(st.sampled_from(NAMES), expressions()).map(lambda t: f"{t[0]} = {t[1]}"),
        expressions().map(lambda e: f"store[{e} % 5] = {e}"),
        expressions().map(lambda e: f"counter += {e} % 7"),
        expressions().map(lambda e: f'emit("E", v={e} % 1000)'),
        expressions().map(lambda e: f"require({e} != 12345, 'unlucky')"),
    )
    if depth >= 2:
        return simple
    block = st.lists(statements(depth + 1), min_size=1, max_size=3).map(
        lambda ss: textwrap.indent("\n".join(ss), "    ")
    )
    return st.one_of(
        simple,
        st.tuples(expressions(), block, block).map(lambda t: f"if {t[0]}:\n{t[1]}\nelse:\n{t[2]}"),
        st.tuples(st.integers(0, 6), block).map(lambda t: f"for i{depth} in range({t[0]}):\n{t[1]}"),
        st.tuples(expressions(), expressions(), block).map(lambda t: f"for x{depth} in [{t[0]}, {t[1]}]:\n{t[2]}"),
        block.map(lambda b: f"while counter < 50:\n    counter += 1\n{b}"),
    )


@st.composite
def programs(draw: st.DrawFn) -> str:
    body = draw(st.lists(statements(), min_size=1, max_size=5))
    lines = "\n".join(["a = n", "b = 2", "c = 3", *body, "return [a, b, c, counter]"])
    return "counter: int\nstore: Map[int, int]\n\n@public\ndef run(n: int) -> list:\n" + textwrap.indent(lines, "    ")


class _Empty:
    def get(self, key: bytes) -> bytes | None:
        return None


def execute(source: str, n: int) -> dict[str, Any]:
    """Compile and run; everything observable, as JSON-friendly data."""
    module = compile_contract(source)
    view = StateView(_Empty())
    address = b"\x0c" * 20
    install(view, address, module)
    ctx = CallContext(b"\x01" * 20, 7, 1_000)
    try:
        result, used, _ = run_call(view, ctx, b"\x01" * 20, address, "run", [n], 0, GAS)
        outcome: dict[str, Any] = {"result": repr(result), "gas": used}
    except VMError as exc:
        outcome = {"error": f"{type(exc).__name__}: {exc}", "gas": getattr(exc, "gas_used", None)}
    outcome["state"] = sorted([k.hex(), None if v is None else v.hex()] for k, v in view.changes().items())
    outcome["events"] = repr(ctx.events)
    outcome["code"] = module.encode().hex()
    return outcome


CHILD = """
import json, sys
from tests.vm.test_determinism import execute
jobs = json.load(sys.stdin)
print(json.dumps([execute(source, n) for source, n in jobs]))
"""


# A child process costs about a second: each example is a batch of programs, checked in one child.
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(st.tuples(programs(), st.integers(-(2**64), 2**64)), min_size=20, max_size=30))
def test_random_programs_behave_the_same_in_another_process(jobs: list[tuple[str, int]]) -> None:
    here = [execute(source, n) for source, n in jobs]
    for outcome in here:
        assert outcome["gas"] is None or 0 < outcome["gas"] <= GAS  # it stopped within its gas
    child = subprocess.run(
        [sys.executable, "-c", CHILD],
        input=json.dumps(jobs),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env={"PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert child.returncode == 0, child.stderr[-2000:]
    assert json.loads(child.stdout) == here
