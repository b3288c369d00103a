"""The instructions that need more than a line of the interpreter's loop: arithmetic, comparisons,
concatenation, indexing, containers and methods, each with the VM's own checks and words.

Each takes the running interpreter first (for gas and memory) like the builtins do. Every
operand kind a rule does not allow is a `VMError` naming the kinds (vm/faults.py), found by
these checks and never by letting Python raise.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from core.contract_values import INT_MAX, INT_MIN, MAX_LIST, MAX_VALUE_BYTES
from vm import gas as G
from vm.bytecode import Method, Op
from vm.faults import Fault, VMError, kind

if TYPE_CHECKING:
    from vm.machine import Machine

# Plain-int copies of the opcodes and methods for dispatch: fetching an IntEnum member and
# comparing an int with it costs ~8x a plain int on CPython 3.11, once per instruction.
OP = SimpleNamespace(**{op.name: int(op) for op in Op})
M = SimpleNamespace(**{method.name: int(method) for method in Method})
FLAT = frozenset({int, bool, bytes, str, type(None)})  # kinds `==` compares without walking
SMALL = frozenset({int, bool, type(None)})  # kinds `==` compares in constant time
NUMBER = frozenset({int, bool})
MAX_COMPARE_DEPTH = 64  # nesting of the lists and dicts `==` and `in` walk
_OP_NAMES = {
    OP.ADD: "+",
    OP.SUB: "-",
    OP.MUL: "*",
    OP.FLOORDIV: "//",
    OP.MOD: "%",
    OP.POW: "**",
    OP.NEG: "unary -",
    OP.INVERT: "~",
    OP.BITAND: "&",
    OP.BITOR: "|",
    OP.BITXOR: "^",
    OP.LSHIFT: "<<",
    OP.RSHIFT: ">>",
    OP.LT: "<",
    OP.LE: "<=",
    OP.GT: ">",
    OP.GE: ">=",
    OP.IN: "in",
    OP.NOT_IN: "not in",
}
_METHOD_NAMES = {M.APPEND: "append()", M.POP: "pop()", M.GET: "get()", M.KEYS: "keys()", M.VALUES: "values()"}


def nbytes(value: bytes | str) -> int:
    """Bytes a bytes or str value may occupy and cost to copy, compare or hash (4 per character of a str)."""
    return len(value) if type(value) is bytes else 4 * len(value)


def add(vm: Machine, a: Any, b: Any) -> Any:
    """`+` on anything but two ints: bools count as ints; bytes, strings and lists concatenate."""
    ta, tb = type(a), type(b)
    if ta in NUMBER and tb in NUMBER:
        r = int(a) + int(b)
        if not INT_MIN <= r <= INT_MAX:
            raise VMError(Fault.OVERFLOW, op="+")
        return r
    if ta is not tb or ta not in (bytes, str, list):
        raise VMError(Fault.OPERANDS, op="+", left=kind(a), right=kind(b))
    vm._charge(G.CONCAT)
    if ta is list:
        if len(a) + len(b) > MAX_LIST:
            raise VMError(Fault.LIST_TOO_LONG, limit=MAX_LIST)
        vm._alloc_items(len(a) + len(b))
    else:
        if len(a) + len(b) > MAX_VALUE_BYTES:
            raise VMError(Fault.VALUE_TOO_LARGE, limit=MAX_VALUE_BYTES)
        vm._alloc(nbytes(a) + nbytes(b))
    return a + b


def order(vm: Machine, op: int, a: Any, b: Any) -> bool:
    """<, <=, >, >= on two numbers, two bytes or two strings (the loop handles two ints itself)."""
    ta, tb = type(a), type(b)
    if not ((ta in NUMBER and tb in NUMBER) or (ta is tb and (ta is bytes or ta is str))):
        raise VMError(Fault.OPERANDS, op=_OP_NAMES[op], left=kind(a), right=kind(b))
    if ta is bytes or ta is str:
        vm._charge(G.COMPARE_WORD * (min(nbytes(a), nbytes(b)) >> 5))
    if op == OP.LT:
        return bool(a < b)
    if op == OP.LE:
        return bool(a <= b)
    if op == OP.GT:
        return bool(a > b)
    return bool(a >= b)


def equal(vm: Machine, a: Any, b: Any, depth: int) -> bool:
    """`==` walking lists and dicts with the VM's own bounds (Python's would recurse without any),
    charged by what it compares: bytes of equal-length strings, items of lists and dicts."""
    ta, tb = type(a), type(b)
    if ta is not list and ta is not dict:
        if tb is list or tb is dict:
            return False
        if (ta is bytes or ta is str) and tb is ta and len(a) == len(b):
            vm._charge(G.COMPARE_WORD * (nbytes(a) >> 5))
        return bool(a == b)
    if ta is not tb or len(a) != len(b):
        return False
    if depth >= MAX_COMPARE_DEPTH:
        raise VMError(Fault.TOO_DEEP, limit=MAX_COMPARE_DEPTH)
    if ta is list and SMALL.issuperset(map(type, a)):
        # Each item of `a` compares with its peer in constant time and walks nothing: Python's own loop.
        vm._charge(G.COMPARE_ITEM_FLAT * len(a))
        return bool(a == b)
    vm._charge(G.COMPARE_ITEM * len(a))
    if ta is list:
        return all(equal(vm, x, y, depth + 1) for x, y in zip(a, b, strict=True))
    return all(key in b and equal(vm, value, b[key], depth + 1) for key, value in a.items())


def contains(vm: Machine, container: Any, item: Any) -> bool:
    kind_ = type(container)
    if kind_ is dict:
        hashable(vm, item)
        return item in container
    if kind_ is list:
        kind_item = type(item)
        if kind_item in SMALL:  # compares with each item in constant time, walks nothing: Python's own scan
            vm._charge(G.COMPARE_ITEM_FLAT * len(container))
            return item in container
        if kind_item is bytes or kind_item is str:  # each item of the same length costs a full compare
            vm._charge((G.COMPARE_ITEM_FLAT + G.COMPARE_WORD * (nbytes(item) >> 5)) * len(container))
            return item in container
        return any(equal(vm, x, item, 0) for x in container)
    if (kind_ is bytes or kind_ is str) and type(item) is kind_:
        # Substring search: linear at best, up to (haystack x needle) on crafted input (short needles).
        needle = nbytes(item)
        words = (nbytes(container) >> 5) + (needle >> 5) + 1
        vm._charge(G.SEARCH_PAIR * words * min(needle, G.SEARCH_NEEDLE_CAP))
        return item in container
    raise VMError(Fault.OPERANDS, op="in", left=kind(item), right=kind(container))


def arith(vm: Machine, op: int, stack: list[Any]) -> None:
    if op == OP.NEG or op == OP.NOT or op == OP.INVERT:
        a = stack.pop()
        if op == OP.NOT:
            stack.append(not a)
            return
        r = -to_int(a) if op == OP.NEG else ~to_int(a)
    else:
        b = to_int(stack.pop())
        a = to_int(stack.pop())
        if op == OP.MUL:
            r = a * b
        elif op == OP.FLOORDIV or op == OP.MOD:
            if b == 0:
                raise VMError(Fault.DIVISION_BY_ZERO)
            r = a // b if op == OP.FLOORDIV else a % b
        elif op == OP.POW:
            if b < 0:
                raise VMError(Fault.NEGATIVE_EXPONENT)
            vm._charge(G.POW_BIT * b.bit_length())
            # |a| >= 2^(L-1) for its bit length L: (L-1)*b >= 256 overflows for sure; below that the
            # result has under 512 bits, cheap to compute and then check (|a| <= 1: -1, 0 or 1).
            if abs(a) > 1 and (abs(a).bit_length() - 1) * b >= 256:
                raise VMError(Fault.OVERFLOW, op="**")
            r = a**b
        elif op == OP.BITAND:
            r = a & b
        elif op == OP.BITOR:
            r = a | b
        elif op == OP.BITXOR:
            r = a ^ b
        else:
            if b < 0:
                raise VMError(Fault.NEGATIVE_SHIFT)
            if op == OP.LSHIFT:
                if b > 256 and a:
                    raise VMError(Fault.OVERFLOW, op="<<")
                r = a << min(b, 256)
            else:
                r = a >> min(b, 512)
    if not INT_MIN <= r <= INT_MAX:
        raise VMError(Fault.OVERFLOW, op=_OP_NAMES[op])
    stack.append(r)


def alloc_value(vm: Machine, value: Any) -> None:
    """Meter a slice: its bytes, or its items."""
    if type(value) is list:
        vm._alloc_items(len(value))
    else:
        vm._alloc(nbytes(value))


def store_index(vm: Machine, container: Any, key: Any, value: Any) -> None:
    kind_ = type(container)
    if kind_ is dict:
        hashable(vm, key)
        if key not in container:
            if len(container) >= MAX_LIST:
                raise VMError(Fault.DICT_TOO_LONG, limit=MAX_LIST)
            vm._alloc_items(2)
        container[key] = value
    elif kind_ is list:
        if type(key) not in NUMBER:
            raise VMError(Fault.BAD_INDEX, container=kind(container), kind=kind(key))
        index = int(key)
        if not -len(container) <= index < len(container):
            raise VMError(Fault.INDEX_RANGE, index=index, kind="a list", length=len(container))
        container[index] = value
    else:
        raise VMError(Fault.ASSIGN_INTO, kind=kind(container))


def method(vm: Machine, which: int, argc: int, stack: list[Any]) -> None:
    args = stack[len(stack) - argc :] if argc else []
    del stack[len(stack) - argc :]
    obj = stack.pop()
    if which == M.APPEND and type(obj) is list:
        if len(obj) >= MAX_LIST:
            raise VMError(Fault.LIST_TOO_LONG, limit=MAX_LIST)
        vm._alloc_items(1)
        obj.append(args[0])
        stack.append(None)
    elif which == M.POP and type(obj) is list:
        if not obj:
            raise VMError(Fault.POP_EMPTY)
        stack.append(obj.pop())
    elif which == M.GET and type(obj) is dict:
        hashable(vm, args[0])
        stack.append(obj.get(args[0], args[1] if len(args) > 1 else None))
    elif (which == M.KEYS or which == M.VALUES) and type(obj) is dict:
        vm._alloc_items(len(obj))
        stack.append(list(obj.keys() if which == M.KEYS else obj.values()))
    else:
        raise VMError(Fault.NO_METHOD, kind=kind(obj), method=_METHOD_NAMES[which])


def index(vm: Machine, container: Any, key: Any) -> Any:
    """`container[key]` with the VM's checks (the loop handles an in-range list index itself)."""
    vm._charge(G.INDEX_SLOW)
    kind_ = type(container)
    if kind_ is dict:
        hashable(vm, key)
        if key not in container:
            raise VMError(Fault.KEY_MISSING, kind=kind(key))
        return container[key]
    if kind_ is not list and kind_ is not bytes and kind_ is not str:
        raise VMError(Fault.NOT_INDEXABLE, kind=kind(container))
    if type(key) not in NUMBER:
        raise VMError(Fault.BAD_INDEX, container=kind(container), kind=kind(key))
    position = int(key)
    if not -len(container) <= position < len(container):
        raise VMError(Fault.INDEX_RANGE, index=position, kind=kind(container), length=len(container))
    return container[position]


def to_int(value: Any) -> int:
    if type(value) is int:
        return value
    if type(value) is bool:
        return int(value)
    raise VMError(Fault.EXPECTED_INT, kind=kind(value))


def hashable(vm: Machine, key: Any) -> None:
    """Check `key` can key a dict, and charge hashing it (and comparing it with an equal key) by size."""
    kind_ = type(key)
    if kind_ not in FLAT:
        raise VMError(Fault.UNHASHABLE, kind=kind(key))
    if kind_ is bytes or kind_ is str:
        vm._charge(G.HASH_WORD * (nbytes(key) >> 5))
