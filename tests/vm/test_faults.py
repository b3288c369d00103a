"""Consensus sees only the VM's own words: every failure a receipt can carry comes from the closed
set of vm/faults.py, whatever programs and arguments do; a bug is one fixed message, logged and counted."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from core import codec
from core.contract_values import encode_call, to_wire
from core.receipt import STATUS_FAILED
from core.transaction import TxKind
from node.metrics import NodeMetrics
from tests.vm.test_contract_vm import CONTRACT, DEPLOYER, Empty
from tests.vm.test_execution import ALICE, DictState, ctx, tx
from vm import builtins
from vm.account import Account
from vm.bytecode import BUILTIN_ARITY, METHOD_ARITY, Builtin, Module, Op
from vm.compiler import CompileError, compile_contract
from vm.contract_tx import encode_deploy
from vm.contracts import CallContext, contract_address, install, run_call
from vm.execution import apply_transaction
from vm.faults import Fault, InternalVMError, Revert, VMError, internal_errors
from vm.stack_check import check_module
from vm.state import StateView

GAS = 5_000_000


def _pattern(fault: Fault) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", fault.value)
    regex = "".join(re.escape(part) if i % 2 == 0 else "(.+?)" for i, part in enumerate(parts))
    return re.compile(regex + r"\Z", re.DOTALL)


CLOSED_SET = [(fault, _pattern(fault)) for fault in Fault if fault not in (Fault.REVERT, Fault.INTERNAL)]


def own_words(message: str) -> bool:
    """The message is one of the VM's own (other than a contract's require reason and the bug message)."""
    return any(pattern.match(message) for _, pattern in CLOSED_SET)


def receipt_error(source: str, function: str, args: list[Any]) -> str:
    """Deploy `source` and call `function`: the error its receipt carries."""
    view = StateView(DictState({ALICE.address: Account(10**15)}))
    deploy = tx(ALICE, to=b"", gas_limit=GAS, data=encode_deploy(compile_contract(source), []), kind=int(TxKind.DEPLOY))
    assert apply_transaction(view, deploy, ctx()).error == ""
    address = contract_address(ALICE.address, 0)
    call = tx(ALICE, to=address, nonce=1, gas_limit=GAS, data=encode_call(function, args), kind=int(TxKind.CALL))
    receipt = apply_transaction(view, call, ctx())
    assert receipt.status == STATUS_FAILED
    return receipt.error


# On CPython these failures used to reach receipts in its own words, e.g. "type error: '<' not supported
# between instances of 'int' and 'str'" or "index out of range (list index out of range)".
@pytest.mark.parametrize(
    ("body", "args", "message"),
    [
        ("return a < b", [1, "x"], "type error: < does not take an int and a string"),
        ("return a + b", [b"ab", "c"], "type error: + does not take bytes and a string"),
        ("return [1, 2][a]", [5, 0], "index 5 out of range for a list of length 2"),
        ("return b[a]", [-4, b"xyz"], "index -4 out of range for bytes of length 3"),
        ("return [1, 2][b]", [0, "k"], "type error: a list cannot be indexed by a string"),
        ("d = {1: 2}\n    return d[a]", [7, 0], "the dict has no such key (an int)"),
        ("d = {}\n    d[[a]] = b\n    return d", [1, 2], "type error: a list cannot be a dict key"),
        ("d = {'k': 1}\n    return [a] in d", [1, 0], "type error: a list cannot be a dict key"),
        ("return a[b]", [None, 0], "type error: None cannot be indexed or sliced"),
        ("return a - b", ["x", 1], "type error: expected an int, got a string"),
        (
            "x = [a]\n    x.append(x)\n    y = [a]\n    y.append(y)\n    return x == y",
            [1, 0],
            "values nest at most 64 levels deep",
        ),
        ("return len(a) + b", [5, 0], "type error: len() takes bytes, a string, a list or a dict"),
        ("return a.get(b)", [[1], 0], "type error: a list has no method get()"),
    ],
)
def test_receipts_name_type_index_and_key_errors_in_the_vms_own_words(body: str, args: list[Any], message: str) -> None:
    source = f"@public\ndef f(a: int, b: int) -> int:\n    {body}\n"
    error = receipt_error(source, "f", args)
    assert error == message
    assert own_words(error)


def test_a_require_with_a_reason_that_is_not_a_string_reverts_with_fixed_words() -> None:
    error = receipt_error("@public\ndef f(a: int) -> int:\n    require(False, a)\n    return 0\n", "f", [[1, b"\x00"]])
    assert error == "requirement failed"


def test_malformed_data_and_bytecode_are_named_by_what_was_expected() -> None:
    view = StateView(DictState({ALICE.address: Account(10**15)}))
    bad_code = codec.encode([b"\xc1", []])  # not msgpack inside: the decoder's own words stay out
    cases = [
        tx(ALICE, to=b"", gas_limit=GAS, data=bad_code, kind=int(TxKind.DEPLOY)),
        tx(ALICE, to=b"\x05" * 20, nonce=1, gas_limit=GAS, data=b"\x92\xc1", kind=int(TxKind.CALL)),
        tx(ALICE, to=b"\x05" * 20, nonce=2, gas_limit=GAS, data=codec.encode(["f", [[99, 1]]]), kind=int(TxKind.CALL)),
        tx(ALICE, to=b"", value=0, nonce=3, gas_limit=GAS, data=b"\x01", kind=int(TxKind.VALIDATOR_VOTE)),
    ]
    errors = [apply_transaction(view, case, ctx()).error for case in cases]
    assert errors == [
        Fault.BAD_CODE.value,
        Fault.MALFORMED_CALL.value,
        Fault.MALFORMED_ARGUMENTS.value,
        Fault.VOTE_MALFORMED.value,
    ]


# --- the stack rule ----------------------------------------------------------------------------------


def _module(code: list[int], consts: list[Any] = (), n_locals: int = 2) -> bytes:  # type: ignore[assignment]
    function = ["f", 0, n_locals, True, False, [to_wire(c) for c in consts], code]
    return codec.encode([20, 1, [function], [["v", 0, 0]]])


@pytest.mark.parametrize(
    "code",
    [
        [Op.POP, 0, Op.CONST, 0, Op.RETURN, 0],  # pops an empty stack
        [Op.CONST, 0, Op.JUMP, 0],  # grows the stack on every turn of a loop
        [Op.CONST, 0, Op.JUMP_IF_TRUE, 8, Op.CONST, 0, Op.CONST, 0, Op.RETURN, 0],  # two heights meet at 8
        [Op.ITER_NEXT, 0, Op.POP, 0, Op.CONST, 0, Op.RETURN, 0],  # ITER_NEXT without its flag test
    ],
)
def test_code_that_breaks_the_stack_rule_is_refused_at_deploy(code: list[int]) -> None:
    module = Module.decode(_module([int(x) for x in code], [0]))
    view = StateView(DictState({ALICE.address: Account(10**15)}))
    deploy = tx(ALICE, to=b"", gas_limit=GAS, data=encode_deploy(module, []), kind=int(TxKind.DEPLOY))
    receipt = apply_transaction(view, deploy, ctx())
    assert receipt.status == STATUS_FAILED and receipt.error.startswith("function f: its code can pop an empty stack")
    assert own_words(receipt.error)


def test_every_contract_the_compiler_makes_keeps_the_stack_rule() -> None:
    from pathlib import Path

    sources = sorted((Path(__file__).resolve().parents[2] / "vm" / "system").glob("*.contract"))
    assert len(sources) >= 5
    for path in sources:
        check_module(compile_contract(path.read_text()))


# --- random programs only ever fail in the VM's own words --------------------------------------------

CONSTS = st.one_of(
    st.integers(-(2**255), 2**255 - 1),
    st.integers(-3, 3),
    st.binary(max_size=6),
    st.text(max_size=3),
    st.booleans(),
    st.none(),
)
VALUES = st.recursive(CONSTS, lambda inner: st.lists(inner, max_size=3), max_leaves=5)
_UNARY = (Op.NEG, Op.NOT, Op.INVERT)
_SIMPLE = (
    [
        (Op.NOP, 0, 0),
        (Op.POP, 1, 0),
        (Op.DUP, 1, 2),
        (Op.STORE, 1, 0),
        (Op.SSTORE, 1, 0),
        (Op.STORE_INDEX, 3, 0),
        (Op.SLICE, 3, 1),
        (Op.MLOAD, 1, 1),
        (Op.MSTORE, 2, 0),
        (Op.MHAS, 1, 1),
        (Op.MDEL, 1, 0),
        (Op.SLOAD, 0, 1),
        (Op.INDEX, 2, 1),
    ]
    + [(op, 1, 1) for op in _UNARY]
    + [(op, 2, 1) for op in Op if Op.ADD <= op <= Op.NOT_IN and op not in _UNARY]
)


@st.composite
def even_stack_functions(draw: st.DrawFn) -> tuple[bytes, int]:
    """A random function whose code keeps the stack rule, so it runs: (module, parameters)."""
    consts = draw(st.lists(CONSTS, min_size=1, max_size=6))
    n_params = draw(st.integers(0, 2))
    n_locals = n_params + 2
    body: list[tuple[int, int]] = []
    stubs: list[int] = []  # instruction indexes of jumps to patch: each gets its own [BUILD_LIST 0, RETURN]
    h = 0
    for _ in range(draw(st.integers(1, 30))):
        choice = draw(st.integers(0, 9))
        if choice <= 2 or h == 0:
            body.append(
                (Op.CONST, draw(st.integers(0, len(consts) - 1)))
                if draw(st.booleans())
                else (Op.LOAD, draw(st.integers(0, n_locals - 1)))
            )
            h += 1
            continue
        if choice == 3:
            which = draw(st.sampled_from(sorted(int(b) for b in Builtin)))
            lo, hi = BUILTIN_ARITY[which]
            if lo > h:
                continue
            argc = draw(st.integers(lo, min(hi, lo + 4, h)))
            body.append((Op.BUILTIN, (which << 8) | argc))
            h += 1 - argc
        elif choice == 4:
            which = draw(st.sampled_from(sorted(int(m) for m in METHOD_ARITY)))
            lo, hi = METHOD_ARITY[which]
            argc = draw(st.integers(lo, hi))
            if argc + 1 > h:
                continue
            body.append((Op.METHOD, (which << 8) | argc))
            h -= argc
        elif choice == 5:
            n = draw(st.integers(0, min(3, h // 2)))
            body.append((draw(st.sampled_from([Op.BUILD_LIST, Op.BUILD_DICT])), n))
            h += 1 - (n if body[-1][0] == Op.BUILD_LIST else 2 * n)
        elif choice == 6:
            op = draw(st.sampled_from([Op.JUMP_IF_FALSE, Op.JUMP_IF_TRUE, Op.AND_JUMP, Op.OR_JUMP]))
            stubs.append(len(body))
            body.append((op, 0))
            h -= 1
        elif choice == 7:
            body.append((Op.STORE, n_locals - 2))  # the sequence, then its index 0, then the loop's step
            body += [(Op.CONST, consts.index(0) if 0 in consts else 0), (Op.STORE, n_locals - 1)]
            stubs.append(len(body) + 1)
            body += [(Op.ITER_NEXT, n_locals - 2), (Op.JUMP_IF_FALSE, 0)]
            h += 0  # popped the sequence, pushed the item
        elif choice == 8:
            body.append((Op.INDEX_CONST, draw(st.integers(0, len(consts) - 1))))
        else:
            op, pops, pushes = draw(st.sampled_from(_SIMPLE))
            if pops > h:
                continue
            body.append((op, 1 if op in (Op.MLOAD, Op.MSTORE, Op.MHAS, Op.MDEL) else 0))
            h += pushes - pops
    if h == 0:
        body.append((Op.BUILD_LIST, 0))
    body.append((Op.RETURN, 0))
    for at in stubs:
        body[at] = (body[at][0], len(body))
        body += [(Op.BUILD_LIST, 0), (Op.RETURN, 0)]
    code = [
        int(x)
        for pair in body
        for x in (
            pair[0],
            2 * pair[1]
            if pair[0] in (Op.JUMP, Op.JUMP_IF_FALSE, Op.JUMP_IF_TRUE, Op.AND_JUMP, Op.OR_JUMP)
            else pair[1],
        )
    ]
    function = ["f", n_params, n_locals, True, False, [to_wire(c) for c in consts], code]
    return codec.encode([20, 1, [function], [["v", 0, 0], ["m", 1, None]]]), n_params


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(even_stack_functions(), st.lists(VALUES, min_size=2, max_size=2))
def test_random_programs_that_run_fail_only_in_the_vms_own_words(program: tuple[bytes, int], args: list[Any]) -> None:
    raw, n_params = program
    module = Module.decode(raw)
    check_module(module)  # the generator keeps the stack rule, so every program really runs
    bugs = internal_errors()
    view = StateView(Empty())
    install(view, CONTRACT, module)
    try:
        run_call(view, CallContext(DEPLOYER, 1, 0), DEPLOYER, CONTRACT, "f", args[:n_params], 0, 200_000)
    except Revert as exc:
        assert exc.fault is Fault.REVERT
    except VMError as exc:
        assert not isinstance(exc, InternalVMError), f"a program reached the unexpected-exception path: {exc}"
        assert own_words(str(exc)), str(exc)
    assert internal_errors() == bugs


LEAVES = ["a", "b", "0", "7", "-2", "'ab'", "b'xy'", "[1, 'a']", "None", "True", "{1: 'v'}", "store[a]", "[]"]


def expressions() -> st.SearchStrategy[str]:
    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        binary = st.tuples(
            inner,
            st.sampled_from(["+", "-", "*", "//", "%", "**", "<", "<=", "==", "!=", "in", "not in", "<<", "&"]),
            inner,
        )
        return st.one_of(
            binary.map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            st.tuples(inner, inner).map(lambda t: f"{t[0]}[{t[1]}]"),
            st.tuples(inner, inner, inner).map(lambda t: f"{t[0]}[{t[1]}:{t[2]}]"),
            st.tuples(st.sampled_from(["len", "str", "sha256", "abs", "from_bytes", "address_of"]), inner).map(
                lambda t: f"{t[0]}({t[1]})"
            ),
            st.tuples(st.sampled_from(["min", "to_bytes", "max"]), inner, inner).map(
                lambda t: f"{t[0]}({t[1]}, {t[2]})"
            ),
            st.tuples(inner, inner).map(lambda t: f"[{t[0]}, {t[1]}]"),
            st.tuples(inner, inner).map(lambda t: f"{t[0]}.get({t[1]})"),
            inner.map(lambda e: f"{e}.keys()"),
        )

    return st.recursive(st.sampled_from(LEAVES), extend, max_leaves=5)


def statements() -> st.SearchStrategy[str]:
    e = expressions()
    return st.one_of(
        e.map(lambda x: f"a = {x}"),
        e.map(lambda x: f"b = {x}"),
        st.tuples(e, e).map(lambda t: f"store[{t[0]}] = {t[1]}"),
        e.map(lambda x: f"a.append({x})"),
        e.map(lambda x: "b.pop()"),
        st.tuples(e, e).map(lambda t: f"a[{t[0]}] = {t[1]}"),
        e.map(lambda x: f'emit("E", v={x})'),
        e.map(lambda x: f"require({x}, 'no')"),
        e.map(lambda x: f"for x in {x}:\n        a = x"),
        e.map(lambda x: f"return {x}"),
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(statements(), min_size=1, max_size=6), st.lists(VALUES, min_size=2, max_size=2))
def test_random_contracts_and_arguments_fail_only_in_the_vms_own_words(body: list[str], args: list[Any]) -> None:
    source = "store: Map[int, int]\n\n@public\ndef f(a: int, b: int) -> int:\n    " + "\n    ".join(body)
    source += "\n    return 0\n"
    try:
        module = compile_contract(source)
    except CompileError:
        assume(False)
        return
    bugs = internal_errors()
    view = StateView(Empty())
    install(view, CONTRACT, module)
    try:
        run_call(view, CallContext(DEPLOYER, 1, 0), DEPLOYER, CONTRACT, "f", args, 0, 200_000)
    except Revert as exc:
        assert str(exc) == "no"
    except VMError as exc:
        assert not isinstance(exc, InternalVMError), f"{source}\n reached the unexpected-exception path"
        assert own_words(str(exc)), str(exc)
    assert internal_errors() == bugs


# --- a bug: one fixed message, a traceback in the log, a count in /metrics -----------------------------


def test_an_unexpected_exception_is_one_fixed_message_logged_and_counted(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(vm: object, args: list[Any], depth: int) -> Any:
        return {}[args[0]]  # a KeyError where the VM expected none: what a bug in a builtin looks like

    monkeypatch.setitem(builtins.BUILTINS, int(Builtin.ABS), broken)
    metrics = NodeMetrics()
    before = metrics.registry.get_sample_value("aichain_vm_internal_errors_total")
    with caplog.at_level(logging.ERROR, logger="vm.faults"):
        error = receipt_error("@public\ndef f(a: int, b: int) -> int:\n    return abs(a)\n", "f", [3, 0])
    assert error == "internal VM error"
    assert any(record.exc_info and record.exc_info[0] is KeyError for record in caplog.records)
    assert metrics.registry.get_sample_value("aichain_vm_internal_errors_total") == before + 1
    assert b"aichain_vm_internal_errors_total" in metrics.render()
