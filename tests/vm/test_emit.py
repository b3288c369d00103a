"""`emit` refuses exactly what it refused, in the same words, and charges the same gas: checked against
its plain form (kept here) on events of every shape."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from vm import gas as G
from vm.builtins import BUILTINS
from vm.bytecode import Builtin
from vm.faults import Fault, VMError, contract_text
from vm.operations import nbytes


def reference_emit(a: list[Any]) -> tuple[int, list[tuple[str, Any]]]:
    """(gas, fields) of `emit(*a)` in its plain form; raises its `VMError`."""
    name, rest = a[0], a[1:]
    if type(name) is not str or len(rest) % 2:
        raise VMError(Fault.EVENT_SHAPE)
    fields = []
    size = nbytes(name)
    for key, value in zip(rest[0::2], rest[1::2], strict=True):
        if type(key) is not str or type(value) not in (int, bytes, str, bool):
            raise VMError(Fault.EVENT_FIELD)
        if type(value) is int and not -(1 << 63) <= value < (1 << 64):
            raise VMError(Fault.EVENT_INT, name=contract_text(key))
        size += nbytes(key) + (nbytes(value) if type(value) in (bytes, str) else 8)
        fields.append((key, value))
    return G.EVENT + G.EVENT_FIELD * len(fields) + G.EVENT_BYTE * size, fields


class _Host:
    read_only = False

    def __init__(self) -> None:
        self.events: list[tuple[str, list[tuple[str, Any]]]] = []

    def emit(self, name: str, fields: list[tuple[str, Any]]) -> None:
        self.events.append((name, fields))


class _VM:
    def __init__(self) -> None:
        self.gas = 10**12
        self.host = _Host()

    def _charge(self, gas: int) -> None:
        self.gas -= gas


def outcome(run: Any, a: list[Any]) -> Any:
    try:
        return run(a)
    except VMError as exc:
        return str(exc)


def ours(a: list[Any]) -> tuple[int, list[tuple[str, Any]]]:
    vm = _VM()
    BUILTINS[int(Builtin.EMIT)](vm, list(a), 0)  # type: ignore[arg-type]
    ((_, fields),) = vm.host.events
    return 10**12 - vm.gas, fields


VALUES = st.one_of(
    st.integers(min_value=-(1 << 64), max_value=1 << 65),
    st.sampled_from([-(1 << 63), -(1 << 63) - 1, (1 << 64) - 1, 1 << 64, 0, True, False, None]),
    st.binary(max_size=40),
    st.text(max_size=20),
    st.lists(st.integers(), max_size=2),
)
KEYS = st.one_of(st.text(max_size=10), st.binary(max_size=3), st.integers(), st.none())


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(st.text(max_size=10), st.binary(max_size=3), st.integers()), st.lists(st.one_of(KEYS, VALUES), max_size=9)
)
def test_emit_gives_what_its_plain_form_gives(name: Any, rest: list[Any]) -> None:
    assert outcome(ours, [name, *rest]) == outcome(reference_emit, [name, *rest])


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=10), st.lists(st.tuples(st.text(max_size=10), VALUES), max_size=6))
def test_well_formed_events_give_what_their_plain_form_gives(name: str, pairs: list[tuple[str, Any]]) -> None:
    a = [name, *(item for pair in pairs for item in pair)]
    assert outcome(ours, a) == outcome(reference_emit, a)
