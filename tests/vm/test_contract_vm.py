"""The contract language, compiler and interpreter: semantics, gas, limits, reverts, and bad input."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import codec
from core.contract_values import INT_MAX, decode_value, encode_value, to_wire
from vm.bytecode import BytecodeError, Module, Op
from vm.compiler import CompileError, compile_contract
from vm.contracts import CallContext, install, run_call
from vm.faults import Fault, InternalVMError, internal_errors
from vm.interpreter import OutOfGas, Revert, VMError
from vm.state import StateView

DEPLOYER = b"\x01" * 20
CONTRACT = b"\x02" * 20
ALICE = b"\x03" * 20


class Empty:
    def get(self, key: bytes) -> bytes | None:
        return None


def deploy(source: str, *args: Any, balance: int = 0) -> StateView:
    view = StateView(Empty())
    install(view, CONTRACT, compile_contract(source))
    view.account(DEPLOYER).balance = balance
    view.touch(DEPLOYER)
    if "def constructor" in source:
        run_call(
            view, CallContext(DEPLOYER, 1, 0), DEPLOYER, CONTRACT, "constructor", list(args), 0, 10**6, internal=True
        )
    return view


def call(
    view: StateView,
    function: str,
    *args: Any,
    gas: int = 10**7,
    value: int = 0,
    caller: bytes = DEPLOYER,
    ctx: CallContext | None = None,
) -> Any:
    return run_call(view, ctx or CallContext(caller, 5, 1234), caller, CONTRACT, function, list(args), value, gas)[0]


TOKEN = '''
"""A minimal token."""
supply: int
balances: Map[bytes, int]

def constructor(amount: int):
    supply = amount
    balances[caller()] = amount

@public
def send(to: bytes, amount: int) -> bool:
    require(amount > 0, "amount must be positive")
    require(balances[caller()] >= amount, "insufficient balance")
    balances[caller()] -= amount
    balances[to] += amount
    emit("Sent", sender=caller(), to=to, amount=amount)
    return True

@view
def balance_of(who: bytes) -> int:
    return balances[who]
'''


def test_a_token_moves_balances_emits_events_and_reverts_with_the_reason() -> None:
    view = deploy(TOKEN, 1000)
    ctx = CallContext(DEPLOYER, 5, 1234)
    assert call(view, "send", ALICE, 10, ctx=ctx) is True
    assert call(view, "balance_of", ALICE) == 10
    assert call(view, "balance_of", DEPLOYER) == 990
    assert ctx.events == [(CONTRACT, "Sent", [("sender", DEPLOYER), ("to", ALICE), ("amount", 10)])]
    with pytest.raises(Revert, match="insufficient balance") as info:
        call(view, "send", ALICE, 10_000, ctx=ctx)
    assert info.value.gas_used > 0  # type: ignore[attr-defined]
    assert len(ctx.events) == 1  # the failed call's events are gone with it
    assert call(view, "balance_of", DEPLOYER) == 990  # and so are its writes


def test_semantics_of_the_subset() -> None:
    source = """
@public
def run(n: int) -> list:
    out = []
    for i in range(n):
        if i % 3 == 0:
            continue
        if i > 10:
            break
        out.append(i * i)
    d = {"a": 1, b"k": [1, 2]}
    d["c"] = len(out)
    total = 0
    for k in d.keys():
        total += 1
    s = "abc"[1:] + str(total)
    x = 5 if 1 < 2 < 3 else 6
    y = 0 or (3 and 4)
    b = to_bytes(258, 2) + sha256(b"")[:1]
    return [out, d["c"], s, x, y, b, from_bytes(b[:2]), -7 // 2, -7 % 2, 2 ** 10, 1 << 4, ~0, min(3, 1, 2),
            abs(-4), 3 in [1, 3], "z" not in "abc", d.get("q", 9), list_sum([1, 2, 3])]

def list_sum(xs: list) -> int:
    acc = 0
    for x in xs:
        acc += x
    return acc
"""
    view = deploy(source)
    assert call(view, "run", 20) == [
        [1, 4, 16, 25, 49, 64, 100],
        7,
        "bc3",
        5,
        4,
        b"\x01\x02\xe3",
        258,
        -4,
        1,
        1024,
        16,
        -1,
        1,
        4,
        True,
        True,
        9,
        6,
    ]


def test_storage_scalars_maps_with_tuple_keys_and_deletes() -> None:
    source = """
owner: bytes
allowed: Map[bytes, int]
names: Map[str, str]

@public
def setup() -> int:
    owner = caller()
    allowed[caller(), b"x"] = 5
    names["a"] = "alice"
    del names["a"]
    return allowed[caller(), b"x"]

@view
def state() -> list:
    return [owner, "a" in names, names["a"], allowed[owner, b"y"]]
"""
    view = deploy(source)
    assert call(view, "setup") == 5
    assert call(view, "state") == [DEPLOYER, False, "", 0]
    with pytest.raises(VMError, match="may not change storage"):
        call(deploy(source + "\n@view\ndef bad():\n    owner = b''\n"), "bad")


def test_integers_are_256_bit_and_overflow_stops_the_call() -> None:
    view = deploy("@public\ndef big(a: int, b: int) -> int:\n    return a + b\n")
    assert call(view, "big", INT_MAX - 1, 1) == INT_MAX
    with pytest.raises(VMError, match="overflow"):
        call(view, "big", INT_MAX, 1)
    view = deploy("@public\ndef p(a: int) -> int:\n    return 2 ** a\n")
    with pytest.raises(VMError, match="overflow"):
        call(view, "p", 255)
    with pytest.raises(VMError, match="division by zero"):
        call(deploy("@public\ndef d(a: int) -> int:\n    return 1 // a\n"), "d", 0)


def test_gas_runs_out_and_memory_and_depth_are_bounded() -> None:
    loop = deploy("@public\ndef spin() -> int:\n    while True:\n        pass\n")
    with pytest.raises(OutOfGas):
        call(loop, "spin", gas=100_000)
    grow = deploy("@public\ndef grow() -> int:\n    s = b'x'\n    while True:\n        s = s + s\n")
    with pytest.raises(VMError, match="limited to"):
        call(grow, "grow", gas=10**9)
    deep = deploy("@public\ndef f(n: int) -> int:\n    return f(n + 1)\n")
    with pytest.raises(VMError, match="depth"):
        call(deep, "f", 0, gas=10**9)


def test_gas_used_is_the_same_every_time() -> None:
    view = deploy(TOKEN, 1000)
    used = {
        run_call(deploy(TOKEN, 1000), CallContext(DEPLOYER, 5, 0), DEPLOYER, CONTRACT, "send", [ALICE, 3], 0, 10**6)[1]
        for _ in range(3)
    }
    assert len(used) == 1 and next(iter(used)) > 0
    assert call(view, "balance_of", ALICE) == 0


def test_native_value_and_payments() -> None:
    source = """
@public
def forward(to: bytes) -> int:
    pay(to, call_value() // 2)
    return native_balance(self_address())
"""
    view = deploy(source, balance=100)
    assert call(view, "forward", ALICE, value=10) == 5
    assert view.account(ALICE).balance == 5 and view.account(DEPLOYER).balance == 90
    with pytest.raises(VMError, match="balance"):
        call(view, "forward", ALICE, value=1000)
    assert view.account(DEPLOYER).balance == 90  # the value went back with the failed call


def test_contracts_call_each_other_and_a_failure_inside_reverts_everything() -> None:
    view = deploy(TOKEN, 1000)
    other = b"\x09" * 20
    install(
        view,
        other,
        compile_contract("""
@public
def relay(token: bytes, to: bytes, amount: int) -> bool:
    return call(token, "send", to, amount)
"""),
    )
    call(view, "send", other, 50)
    ctx = CallContext(DEPLOYER, 5, 0)
    assert run_call(view, ctx, DEPLOYER, other, "relay", [CONTRACT, ALICE, 20], 0, 10**6)[0] is True
    assert call(view, "balance_of", ALICE) == 20 and call(view, "balance_of", other) == 30
    with pytest.raises(Revert):
        run_call(view, ctx, DEPLOYER, other, "relay", [CONTRACT, ALICE, 999], 0, 10**6)
    assert call(view, "balance_of", other) == 30


def test_a_call_can_send_value_and_a_failed_call_sends_it_back() -> None:
    view = deploy("""
received: int

@public
def take(note: str) -> int:
    require(note != "refuse", "refused")
    received += call_value()
    return chain_id()
""")
    sender = b"\x09" * 20
    install(
        view,
        sender,
        compile_contract("""
@public
def forward(target: bytes, note: str) -> int:
    return call(target, "take", note, value=call_value())

@view
def push(target: bytes) -> int:
    return call(target, "take", "view", value=1)
"""),
    )
    view.account(ALICE).balance = 100
    view.touch(ALICE)
    ctx = CallContext(ALICE, 5, 0, chain_id=42)
    assert run_call(view, ctx, ALICE, sender, "forward", [CONTRACT, "ok"], 30, 10**6)[0] == 42
    assert view.account(CONTRACT).balance == 30 and view.account(sender).balance == 0
    assert call(view, "take", "x") == 0  # chain_id() of a context that does not name one
    with pytest.raises(Revert, match="refused"):
        run_call(view, ctx, ALICE, sender, "forward", [CONTRACT, "refuse"], 20, 10**6)
    assert view.account(ALICE).balance == 70 and view.account(CONTRACT).balance == 30
    read_only = CallContext(ALICE, 5, 0, read_only=True)
    with pytest.raises(VMError, match="read-only call may not send value"):
        run_call(view, read_only, ALICE, sender, "push", [CONTRACT], 0, 10**6)
    with pytest.raises(CompileError, match="value=amount"):
        compile_contract('@public\ndef f(a: bytes):\n    call(a, "g", gas=5)\n')


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("import os\n", "line 1: import is not allowed"),
        ("@public\ndef f() -> int:\n    return 1.5\n", "line 3: a constant must be an int"),
        ("@public\ndef f():\n    x = [i for i in range(3)]\n", "line 3: list comprehension"),
        ("class A:\n    pass\n", "line 1: class"),
        ("@public\ndef f():\n    try:\n        pass\n    except Exception:\n        pass\n", "line 3: try"),
        ("@public\ndef f(a):\n    return a.b\n", "line 3: attribute access"),
        ("@public\ndef f():\n    global x\n", "line 3: global"),
        ("@public\ndef f():\n    return lambda: 1\n", "line 3: lambda"),
        ("@public\ndef f():\n    return undefined\n", "line 3: name 'undefined' is not defined"),
        ("@public\ndef f():\n    return 1 / 2\n", "line 3: the operator Div is not supported"),
        ("@other\ndef f():\n    pass\n", "line 1: only @public and @view"),
        ("x = 1\n", "constants are UPPER_CASE"),
        ("total: int\n@public\ndef f(total: int):\n    pass\n", "already a storage variable"),
        ("@public\ndef f(:\n", "syntax error"),
        ("@public\ndef f(*a):\n    pass\n", "only plain positional parameters"),
    ],
)
def test_everything_outside_the_subset_is_a_compile_error_naming_the_line(source: str, message: str) -> None:
    with pytest.raises(CompileError, match=message):
        compile_contract(source)


def test_bytecode_round_trips_and_malformed_bytecode_is_refused() -> None:
    module = compile_contract(TOKEN)
    assert Module.decode(module.encode()) == module
    wire = module.to_wire()
    broken = [
        b"\xc1",  # not msgpack
        codec.encode([wire[0], 99, wire[2], wire[3]]),  # unknown version
        codec.encode([wire[0], wire[1], [[*wire[2][0][:6], [255, 0, 11, 0]]], wire[3]]),  # unknown opcode
        codec.encode([wire[0], wire[1], [[*wire[2][0][:6], [6, 3, 11, 0]]], wire[3]]),  # jump into an argument
        codec.encode([wire[0], wire[1], [[*wire[2][0][:6], [1, 0]]], wire[3]]),  # runs off its end
        codec.encode([wire[0], wire[1], [[*wire[2][0][:6], [2, 200, 11, 0]]], wire[3]]),  # no such local
    ]
    for raw in broken:
        with pytest.raises(BytecodeError):
            Module.decode(raw)


@st.composite
def wire_functions(draw: st.DrawFn) -> list[object]:
    n = draw(st.integers(1, 40))
    code: list[int] = []
    for _ in range(n):
        code += [draw(st.sampled_from([int(op) for op in Op])), draw(st.integers(0, 300))]
    code += [11, 0]
    consts = draw(
        st.lists(
            st.one_of(
                st.integers(-(2**70), 2**70), st.binary(max_size=8), st.text(max_size=4), st.booleans(), st.none()
            ),
            max_size=4,
        )
    )
    return ["f", draw(st.integers(0, 2)), draw(st.integers(2, 6)), True, False, [to_wire(c) for c in consts], code]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wire_functions(), st.lists(st.one_of(st.integers(), st.binary(max_size=4)), max_size=2))
def test_random_bytecode_and_arguments_never_reach_the_unexpected_exception_path(
    function: list[object], args: list[Any]
) -> None:
    """Decode or the stack rule refuses the mutant, or it runs and fails (if it fails) with one of the
    VM's own faults: never the fixed message of an exception the VM did not expect."""
    raw = codec.encode([20, 1, [function], [["v", 0, 0], ["m", 1, None]]])
    try:
        module = Module.decode(raw)
    except BytecodeError:
        return
    bugs = internal_errors()
    view = StateView(Empty())
    try:
        install(view, CONTRACT, module)
    except VMError as exc:
        assert exc.fault is Fault.BAD_STACK
        return
    try:
        run_call(view, CallContext(DEPLOYER, 1, 0), DEPLOYER, CONTRACT, "f", args, 0, 20_000)
    except VMError as exc:
        assert not isinstance(exc, InternalVMError), f"the mutant reached the unexpected-exception path: {exc}"
        assert str(exc) == exc.fault.render(exc.params)
    assert internal_errors() == bugs


@given(
    st.recursive(
        st.one_of(
            st.integers(-(2**255), 2**255 - 1), st.binary(max_size=40), st.text(max_size=10), st.booleans(), st.none()
        ),
        lambda inner: st.lists(inner, max_size=4),
        max_leaves=12,
    )
)
def test_values_round_trip(value: Any) -> None:
    assert decode_value(encode_value(value)) == value


def test_for_loops_walk_lists_bytes_and_strings_and_refuse_anything_else() -> None:
    view = deploy("""
@public
def walk(items: list, text: str, raw: bytes) -> list:
    out = []
    for x in items:
        if x == 2:
            continue
        if x == 4:
            break
        out.append(x)
    for ch in text:
        out.append(ch)
    for b in raw:
        out.append(b)
    return out

@public
def bad(n: int) -> int:
    for x in n:
        pass
    return 0
""")
    assert call(view, "walk", [1, 2, 3, 4, 5], "ab", b"\x07") == [1, 3, "a", "b", 7]
    with pytest.raises(VMError, match="a for loop runs over a list, bytes or a string, not an int"):
        call(view, "bad", 3)
    failing = compile_contract('@public\ndef f(x: int) -> int:\n    require(x > 1, "x must exceed 1")\n    return x\n')
    install(view, ALICE, failing)
    with pytest.raises(Revert, match="x must exceed 1"):
        run_call(view, CallContext(DEPLOYER, 5, 0), DEPLOYER, ALICE, "f", [1], 0, 10**6)
    assert run_call(view, CallContext(DEPLOYER, 5, 0), DEPLOYER, ALICE, "f", [2], 0, 10**6)[0] == 2
