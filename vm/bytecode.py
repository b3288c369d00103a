"""The VM's bytecode: instructions, functions, modules, their canonical encoding and checks.

A contract is a `Module`: named functions and declared storage variables. A function's code
is a flat sequence of (opcode, argument) pairs for a stack machine; `consts` holds its
literals. The encoding (canonical msgpack) is what a deploy transaction carries and what the
chain stores; the code hash is its SHA-256. `Module.decode` checks everything the
interpreter relies on (known opcodes, arguments in range, jump targets on instructions,
calls to existing functions with the right arity), so malformed bytecode is refused at
deploy with a `BytecodeError`, and the interpreter never meets it.

Gas: every opcode has a base cost (vm/gas.py); what depends on sizes (storage, hashing, events,
building values) is charged by the interpreter on top (see vm/interpreter.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from core import codec
from core.contract_values import BadValue, from_wire, to_wire
from core.errors import DecodeError
from core.hashing import sha256

MODULE_TAG = 20
BYTECODE_VERSION = 1
MAX_CODE_BYTES = 96 * 1024
MAX_FUNCTIONS = 256
MAX_INSTRUCTIONS = 16_384  # per function
MAX_LOCALS = 256
MAX_CONSTS = 1024
MAX_STORAGE_VARS = 128
MAX_NAME = 64
CODE_LIMITS = codec.Limits(
    max_bytes=MAX_CODE_BYTES, max_bin_len=MAX_CODE_BYTES, max_array_len=2 * MAX_INSTRUCTIONS, max_depth=6
)


class BytecodeError(DecodeError):
    """Bytecode that does not decode or does not pass the structural checks."""


class Op(IntEnum):
    NOP = 0
    CONST = 1  # push consts[arg]
    LOAD = 2  # push locals[arg]
    STORE = 3  # locals[arg] = pop
    POP = 4
    DUP = 5
    JUMP = 6  # pc = arg
    JUMP_IF_FALSE = 7  # pop; jump if falsy
    JUMP_IF_TRUE = 8  # pop; jump if truthy
    AND_JUMP = 9  # short-circuit `and`: if top is falsy jump (keeping it), else pop
    OR_JUMP = 10  # short-circuit `or`: if top is truthy jump (keeping it), else pop
    RETURN = 11  # return pop
    CALL = 12  # call functions[arg]; its parameters are on the stack
    BUILTIN = 13  # call builtin arg >> 8 with arg & 0xFF arguments
    ITER_NEXT = 14  # locals[arg] a sequence, locals[arg + 1] an index: push its next item and True, or False
    INDEX_CONST = 15  # container -> container[consts[arg]]
    ADD = 20
    SUB = 21
    MUL = 22
    FLOORDIV = 23
    MOD = 24
    POW = 25
    NEG = 26
    NOT = 27
    INVERT = 28
    BITAND = 29
    BITOR = 30
    BITXOR = 31
    LSHIFT = 32
    RSHIFT = 33
    EQ = 40
    NE = 41
    LT = 42
    LE = 43
    GT = 44
    GE = 45
    IN = 46
    NOT_IN = 47
    BUILD_LIST = 50  # pop arg values into a list
    BUILD_DICT = 51  # pop arg key/value pairs into a dict
    INDEX = 52  # container, key -> value
    STORE_INDEX = 53  # value, container, key -> (container[key] = value)
    SLICE = 54  # obj, start, stop -> obj[start:stop] (None for an open end)
    SLOAD = 60  # push storage variable arg
    SSTORE = 61  # storage variable arg = pop
    MLOAD = 62  # key -> map arg [key] (the value type's zero if absent)
    MSTORE = 63  # value, key -> map arg [key] = value
    MHAS = 64  # key -> whether map arg holds key
    MDEL = 65  # key -> delete map arg [key]
    METHOD = 70  # call method arg >> 8 on the object below its arg & 0xFF arguments


JUMPS = frozenset({Op.JUMP, Op.JUMP_IF_FALSE, Op.JUMP_IF_TRUE, Op.AND_JUMP, Op.OR_JUMP})
STORAGE_OPS = frozenset({Op.SLOAD, Op.SSTORE, Op.MLOAD, Op.MSTORE, Op.MHAS, Op.MDEL})


class Builtin(IntEnum):
    """Functions every contract can call; each name is reserved in the language."""

    LEN = 1
    REQUIRE = 2
    EMIT = 3  # name, then (field name, value) pairs
    CALLER = 4
    VALUE = 5
    SELF = 6
    BLOCK_HEIGHT = 7
    BLOCK_TIME = 8
    BALANCE = 9
    TRANSFER = 10
    SHA256 = 11
    VERIFY_ED25519 = 12
    CALL_CONTRACT = 13  # address, function name, then its arguments
    MIN = 14
    MAX = 15
    ABS = 16
    TO_BYTES = 17  # int, length -> big-endian bytes
    FROM_BYTES = 18  # bytes -> unsigned int
    STR = 19
    ORIGIN = 20
    ADDRESS_OF = 21  # Ed25519 public key -> address
    CALL_WITH_VALUE = 22  # address, value, function name, then its arguments
    CHAIN_ID = 23


# (min args, max args) of each builtin; EMIT and CALL_CONTRACT take a variable number.
BUILTIN_ARITY: dict[int, tuple[int, int]] = {
    Builtin.LEN: (1, 1),
    Builtin.REQUIRE: (1, 2),
    Builtin.EMIT: (1, 65),
    Builtin.CALLER: (0, 0),
    Builtin.VALUE: (0, 0),
    Builtin.SELF: (0, 0),
    Builtin.BLOCK_HEIGHT: (0, 0),
    Builtin.BLOCK_TIME: (0, 0),
    Builtin.BALANCE: (1, 1),
    Builtin.TRANSFER: (2, 2),
    Builtin.SHA256: (1, 1),
    Builtin.VERIFY_ED25519: (3, 3),
    Builtin.CALL_CONTRACT: (2, 18),
    Builtin.MIN: (2, 8),
    Builtin.MAX: (2, 8),
    Builtin.ABS: (1, 1),
    Builtin.TO_BYTES: (2, 2),
    Builtin.FROM_BYTES: (1, 1),
    Builtin.STR: (1, 1),
    Builtin.ORIGIN: (0, 0),
    Builtin.ADDRESS_OF: (1, 1),
    Builtin.CALL_WITH_VALUE: (3, 19),
    Builtin.CHAIN_ID: (0, 0),
}


class Method(IntEnum):
    APPEND = 1  # list.append(x)
    POP = 2  # list.pop()
    GET = 3  # dict.get(key, default)
    KEYS = 4  # dict.keys() (a list)
    VALUES = 5  # dict.values() (a list)


METHOD_ARITY: dict[int, tuple[int, int]] = {
    Method.APPEND: (1, 1),
    Method.POP: (0, 0),
    Method.GET: (1, 2),
    Method.KEYS: (0, 0),
    Method.VALUES: (0, 0),
}

Const = int | bytes | str | bool | None


class StorageKind(IntEnum):
    SCALAR = 0
    MAP = 1


@dataclass(frozen=True, slots=True)
class StorageVar:
    """A persistent variable: a scalar, or a map from keys to values; `zero` is its default value."""

    name: str
    kind: int
    zero: Const


@dataclass(frozen=True, slots=True)
class Function:
    name: str
    n_params: int
    n_locals: int  # parameters included
    public: bool
    view: bool  # may not change storage, emit, or transfer
    consts: tuple[Const, ...]
    code: tuple[int, ...]  # opcode, argument, opcode, argument, ...
    # What the interpreter runs: (opcode, argument) pairs, jump targets counted in pairs.
    pairs: tuple[tuple[int, int], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        code = self.code
        pairs = tuple(
            (code[i], code[i + 1] // 2 if code[i] in JUMPS else code[i + 1]) for i in range(0, len(code) - 1, 2)
        )
        object.__setattr__(self, "pairs", pairs)

    def to_wire(self) -> list[codec.Value]:
        consts: list[codec.Value] = [to_wire(c) for c in self.consts]  # tagged: 256-bit integers do not fit msgpack's
        return [self.name, self.n_params, self.n_locals, self.public, self.view, consts, list(self.code)]


@dataclass(frozen=True, slots=True)
class Module:
    functions: tuple[Function, ...]
    storage: tuple[StorageVar, ...]
    # Name -> the first function of that name (what `function` finds), built once: every call looks one up.
    by_name: dict[str, Function] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name: dict[str, Function] = {}
        for f in self.functions:
            by_name.setdefault(f.name, f)
        object.__setattr__(self, "by_name", by_name)

    def to_wire(self) -> list[codec.Value]:
        return [
            MODULE_TAG,
            BYTECODE_VERSION,
            [f.to_wire() for f in self.functions],
            [[v.name, v.kind, v.zero] for v in self.storage],
        ]

    def encode(self) -> bytes:
        return codec.encode(self.to_wire())

    @property
    def code_hash(self) -> bytes:
        return sha256(self.encode())

    def function(self, name: str) -> Function | None:
        return self.by_name.get(name)

    @classmethod
    def decode(cls, raw: bytes) -> Module:
        """Decode and check untrusted bytecode; raise `BytecodeError` saying what is wrong."""
        try:
            value = codec.decode(raw, limits=CODE_LIMITS)
        except DecodeError as exc:
            raise BytecodeError(f"bytecode does not decode: {exc}") from exc
        try:
            module = _module_from_wire(value)
        except DecodeError as exc:
            raise BytecodeError(str(exc)) from exc
        verify(module)
        return module


def _module_from_wire(value: object) -> Module:
    items = codec.expect_list(value, MODULE_TAG, 4, "module")
    if items[1] != BYTECODE_VERSION:
        raise BytecodeError(f"bytecode version {items[1]!r} is not supported (this VM runs {BYTECODE_VERSION})")
    if not isinstance(items[2], list) or not isinstance(items[3], list):
        raise BytecodeError("module: functions and storage must be arrays")
    functions = tuple(_function_from_wire(f) for f in items[2])
    storage = []
    for entry in items[3]:
        if not isinstance(entry, list) or len(entry) != 3:
            raise BytecodeError("storage variable: expected [name, kind, zero]")
        name = codec.expect_str(entry[0], "storage variable name", MAX_NAME)
        kind = codec.expect_uint(entry[1], "storage variable kind", bits=8)
        if kind not in (StorageKind.SCALAR, StorageKind.MAP) or not _is_const(entry[2]):
            raise BytecodeError(f"storage variable {name}: bad kind or zero value")
        storage.append(StorageVar(name, kind, entry[2]))
    return Module(functions, tuple(storage))


def _function_from_wire(value: object) -> Function:
    if not isinstance(value, list) or len(value) != 7:
        raise BytecodeError("function: expected [name, n_params, n_locals, public, view, consts, code]")
    name = codec.expect_str(value[0], "function name", MAX_NAME)
    n_params = codec.expect_uint(value[1], "n_params", bits=16)
    n_locals = codec.expect_uint(value[2], "n_locals", bits=16)
    if type(value[3]) is not bool or type(value[4]) is not bool:
        raise BytecodeError(f"function {name}: public and view must be booleans")
    if not isinstance(value[5], list) or not isinstance(value[6], list):
        raise BytecodeError(f"function {name}: consts and code must be arrays")
    try:
        consts = [from_wire(c) for c in value[5]]
    except BadValue as exc:
        raise BytecodeError(f"function {name}: a constant does not decode: {exc}") from exc
    if not all(_is_const(c) for c in consts):
        raise BytecodeError(f"function {name}: constants must be ints, bytes, str, bools or nil")
    if not all(type(x) is int for x in value[6]):
        raise BytecodeError(f"function {name}: code must be integers")
    return Function(name, n_params, n_locals, value[3], value[4], tuple(consts), tuple(value[6]))


def _is_const(value: object) -> bool:
    return value is None or type(value) in (int, bytes, str, bool)


def verify(module: Module) -> None:
    """The structural rules the interpreter relies on; raise `BytecodeError` naming the first broken one."""
    if len(module.functions) > MAX_FUNCTIONS:
        raise BytecodeError(f"{len(module.functions)} functions, more than {MAX_FUNCTIONS}")
    if len(module.storage) > MAX_STORAGE_VARS:
        raise BytecodeError(f"{len(module.storage)} storage variables, more than {MAX_STORAGE_VARS}")
    names = [f.name for f in module.functions]
    if len(set(names)) != len(names):
        raise BytecodeError("two functions share a name")
    if len({v.name for v in module.storage}) != len(module.storage):
        raise BytecodeError("two storage variables share a name")
    for f in module.functions:
        _verify_function(module, f)


def _verify_function(module: Module, f: Function) -> None:
    where = f"function {f.name}"
    if f.n_params > f.n_locals:
        raise BytecodeError(f"{where}: {f.n_params} parameters but {f.n_locals} locals (parameters are locals)")
    if f.n_locals > MAX_LOCALS:
        raise BytecodeError(f"{where}: {f.n_locals} locals, more than {MAX_LOCALS}")
    if len(f.consts) > MAX_CONSTS:
        raise BytecodeError(f"{where}: {len(f.consts)} constants, more than {MAX_CONSTS}")
    code = f.code
    if not code or len(code) % 2 or len(code) > 2 * MAX_INSTRUCTIONS:
        raise BytecodeError(f"{where}: code must be a non-empty list of (opcode, argument) pairs")
    if code[-2] not in (Op.RETURN, Op.JUMP):
        raise BytecodeError(f"{where}: the last instruction must be RETURN or JUMP (code may not run off its end)")
    known = set(Op._value2member_map_)
    for pc in range(0, len(code), 2):
        op, arg = code[pc], code[pc + 1]
        if op not in known:
            raise BytecodeError(f"{where}: unknown opcode {op} at {pc}")
        if arg < 0 or arg >= 1 << 32:
            raise BytecodeError(f"{where}: argument {arg} of {Op(op).name} at {pc} out of range")
        if op in JUMPS and (arg % 2 or arg >= len(code)):
            raise BytecodeError(f"{where}: {Op(op).name} at {pc} jumps to {arg}, not an instruction")
        if op in (Op.CONST, Op.INDEX_CONST) and arg >= len(f.consts):
            raise BytecodeError(f"{where}: constant {arg} at {pc} does not exist")
        if (op in (Op.LOAD, Op.STORE) and arg >= f.n_locals) or (op == Op.ITER_NEXT and arg + 1 >= f.n_locals):
            raise BytecodeError(f"{where}: local {arg} at {pc} does not exist")
        if op == Op.CALL and arg >= len(module.functions):
            raise BytecodeError(f"{where}: call at {pc} to function {arg}, which does not exist")
        if op in STORAGE_OPS:
            if arg >= len(module.storage):
                raise BytecodeError(f"{where}: storage variable {arg} at {pc} does not exist")
            kind = module.storage[arg].kind
            if (op in (Op.SLOAD, Op.SSTORE)) != (kind == StorageKind.SCALAR):
                raise BytecodeError(f"{where}: {Op(op).name} at {pc} on a {StorageKind(kind).name.lower()}")
        if op == Op.BUILTIN:
            _check_arity(BUILTIN_ARITY, arg, f"{where}: builtin at {pc}")
        if op == Op.METHOD:
            _check_arity(METHOD_ARITY, arg, f"{where}: method at {pc}")
        if op in (Op.BUILD_LIST, Op.BUILD_DICT) and arg > 4096:
            raise BytecodeError(f"{where}: {Op(op).name} of {arg} elements at {pc}")


def _check_arity(table: dict[int, tuple[int, int]], arg: int, where: str) -> None:
    which, argc = arg >> 8, arg & 0xFF
    bounds = table.get(which)
    if bounds is None or not bounds[0] <= argc <= bounds[1]:
        raise BytecodeError(f"{where}: {which} with {argc} arguments does not exist")
