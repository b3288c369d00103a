"""Fuzzing the contract compiler: every input either compiles (to bytecode a deploy accepts) or raises the
compiler's own `CompileError` with a line within the source and a rule; never another exception, never an
internal error. Generated from the grammar, mutated from real contracts, shapes at and past every limit, and
arbitrary bytes. The soak variants run the same properties for longer (`-m soak`)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.vm.contract_sources import extreme_sources, generated_sources, mutated_sources
from vm.bytecode import Module
from vm.compiler import CompileError, compile_contract

QUICK = settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
SOAK = settings(max_examples=20_000, deadline=None, database=None, suppress_health_check=list(HealthCheck))


def check(source: str | bytes) -> Module | CompileError:
    """The property: a checked module, or a CompileError at a line of the source naming its rule."""
    try:
        module = compile_contract(source)
    except CompileError as error:
        text = source.decode("utf-8", "replace") if isinstance(source, bytes) else source
        lines = text.count("\n") + 1
        assert isinstance(error.line, int) and 1 <= error.line <= lines + 1, (str(error), lines)
        assert error.column is None or error.column >= 1, str(error)
        assert error.rule and "internal compiler error" not in error.rule, str(error)
        assert str(error).startswith(f"line {error.line}: "), str(error)
        assert "sys.set_int_max_str_digits" not in str(error)
        return error
    assert Module.decode(module.encode()) == module  # what a deploy does
    return module


@QUICK
@given(generated_sources)
def test_generated_sources(source: str) -> None:
    check(source)


@QUICK
@given(mutated_sources())
def test_mutated_contracts(source: str) -> None:
    check(source)


@settings(max_examples=80, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(extreme_sources(max_size=5000))
def test_shapes_at_and_past_the_limits(shape: tuple[str, str]) -> None:
    check(shape[1])


def test_the_20000_term_expression_of_the_issue() -> None:
    error = check("@public\ndef f():\n    return " + "+".join(["1"] * 20_000) + "\n")
    assert isinstance(error, CompileError) and error.line == 3


@QUICK
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300)))
def test_arbitrary_bytes_and_text(source: bytes | str) -> None:
    check(source)


def test_every_system_contract_still_compiles() -> None:
    from tests.vm.contract_sources import SEEDS

    for source in SEEDS:
        assert isinstance(check(source), Module)


@pytest.mark.soak
@pytest.mark.timeout(3600)
@SOAK
@given(
    st.one_of(
        generated_sources,
        mutated_sources(),
        extreme_sources(max_size=20_000).map(lambda s: s[1]),
        st.binary(max_size=2000),
    )
)
def test_soak_compiler(source: str | bytes) -> None:
    check(source)
