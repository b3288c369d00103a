"""What the contract compiler shares: its error, the names of the language, literals and the limits.

Every `CompileError` names the line (and the column, when the construct has one) and the
rule broken. The limits are the bytecode's (vm/bytecode.py) and the values' (core/contract_values.py),
checked where the source breaks them, so that a contract that compiles also deploys; plus
one of the compiler's own: expressions nest at most `MAX_EXPR_DEPTH` deep.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import cast

from core.contract_values import INT_MAX, INT_MIN, MAX_VALUE_BYTES
from core.errors import AichainError
from vm.bytecode import MAX_NAME, Builtin, Const, Method, Op, StorageVar

MAX_EXPR_DEPTH = 100  # operands within operands; a deeper expression is split with local variables
MAX_LITERAL_ITEMS = 4096  # items of one list or dict literal (BUILD_LIST / BUILD_DICT)

BUILTINS: dict[str, Builtin] = {
    "len": Builtin.LEN,
    "require": Builtin.REQUIRE,
    "emit": Builtin.EMIT,
    "caller": Builtin.CALLER,
    "origin": Builtin.ORIGIN,
    "call_value": Builtin.VALUE,
    "self_address": Builtin.SELF,
    "block_height": Builtin.BLOCK_HEIGHT,
    "block_time": Builtin.BLOCK_TIME,
    "native_balance": Builtin.BALANCE,
    "pay": Builtin.TRANSFER,
    "sha256": Builtin.SHA256,
    "verify_ed25519": Builtin.VERIFY_ED25519,
    "call": Builtin.CALL_CONTRACT,
    "min": Builtin.MIN,
    "max": Builtin.MAX,
    "abs": Builtin.ABS,
    "to_bytes": Builtin.TO_BYTES,
    "from_bytes": Builtin.FROM_BYTES,
    "str": Builtin.STR,
    "address_of": Builtin.ADDRESS_OF,
    "chain_id": Builtin.CHAIN_ID,
}
METHODS: dict[str, Method] = {
    "append": Method.APPEND,
    "pop": Method.POP,
    "get": Method.GET,
    "keys": Method.KEYS,
    "values": Method.VALUES,
}
ZEROS: dict[str, Const] = {"int": 0, "bytes": b"", "Address": b"", "str": "", "bool": False}
BINOPS = {
    ast.Add: Op.ADD,
    ast.Sub: Op.SUB,
    ast.Mult: Op.MUL,
    ast.FloorDiv: Op.FLOORDIV,
    ast.Mod: Op.MOD,
    ast.Pow: Op.POW,
    ast.BitAnd: Op.BITAND,
    ast.BitOr: Op.BITOR,
    ast.BitXor: Op.BITXOR,
    ast.LShift: Op.LSHIFT,
    ast.RShift: Op.RSHIFT,
}
COMPARE = {
    ast.Eq: Op.EQ,
    ast.NotEq: Op.NE,
    ast.Lt: Op.LT,
    ast.LtE: Op.LE,
    ast.Gt: Op.GT,
    ast.GtE: Op.GE,
    ast.In: Op.IN,
    ast.NotIn: Op.NOT_IN,
}
RESERVED = set(BUILTINS) | {"range", "public", "view", "Map", "True", "False", "None"}


class CompileError(AichainError):
    """Source outside the contract language, or wrong within it.

    `str()` is `line L: <rule>` (with ` (column C)` when known); `line`, `column` and `rule`
    are its parts. Columns count characters from 1."""

    rpc_code = -32093

    def __init__(self, rule: str, line: int, column: int | None = None) -> None:
        self.rule, self.line, self.column = rule, line, column
        where = f" (column {column})" if column is not None else ""
        super().__init__(f"line {line}: {rule}{where}")


def fail(node: ast.AST, rule: str) -> CompileError:
    """The error for `rule` broken at `node` (its line and column)."""
    column = getattr(node, "col_offset", None)
    return CompileError(rule, getattr(node, "lineno", 1), None if column is None else column + 1)


def what(node: ast.AST) -> str:
    """How the language reference names a construct, for errors."""
    names = {
        ast.Import: "import",
        ast.ImportFrom: "import",
        ast.ClassDef: "class",
        ast.Lambda: "lambda",
        ast.ListComp: "list comprehension",
        ast.DictComp: "dict comprehension",
        ast.SetComp: "set",
        ast.GeneratorExp: "generator expression",
        ast.Set: "set",
        ast.Global: "global",
        ast.Nonlocal: "nonlocal",
        ast.Try: "try",
        ast.With: "with",
        ast.Raise: "raise (use require)",
        ast.Assert: "assert (use require)",
        ast.Attribute: "attribute access",
        ast.Starred: "*args",
        ast.AsyncFunctionDef: "async def",
        ast.Await: "await",
        ast.Yield: "yield",
        ast.YieldFrom: "yield",
        ast.JoinedStr: "f-string",
        ast.NamedExpr: "the := operator",
        ast.Match: "match",
    }
    return names.get(type(node), type(node).__name__)


def check_name(node: ast.AST, name: str, *, stored: bool = False) -> None:
    """A name the contract declares: not reserved; one kept in the bytecode (`stored`) at most MAX_NAME bytes."""
    if name in RESERVED or name.startswith("_"):
        raise fail(node, f"{name!r} is reserved (builtins and names starting with _)")
    if stored and len(name.encode()) > MAX_NAME:
        raise fail(
            node,
            f"the name {name[:20]}… is {len(name.encode())} bytes long; names of functions and storage "
            f"variables have at most {MAX_NAME}",
        )


def literal(node: ast.expr) -> Const:
    """The value of a literal (an int, bytes, str, bool or None, or a negated int), within the value limits."""
    negations = 0
    inner = node
    while isinstance(inner, ast.UnaryOp) and isinstance(inner.op, ast.USub):
        negations += 1
        inner = inner.operand
    if not isinstance(inner, ast.Constant) or not (inner.value is None or type(inner.value) in (int, bytes, str, bool)):
        raise fail(node, f"a constant must be an int, bytes, str, bool or None literal, not {what(inner)}")
    value = inner.value
    if negations:
        if type(value) is not int:
            raise fail(node, "only integers can be negated in a constant")
        value = -value if negations % 2 else value
    if type(value) is int and not INT_MIN <= value <= INT_MAX:
        raise fail(node, "integer literal outside the 256-bit range")
    if type(value) is str:
        try:
            size = len(value.encode())
        except UnicodeEncodeError:
            raise fail(
                node, "a str constant must be valid Unicode text (it has a lone surrogate, such as \\ud800)"
            ) from None
    else:
        size = len(value) if type(value) is bytes else 0
    if size > MAX_VALUE_BYTES:
        raise fail(
            node,
            f"a {type(value).__name__} constant of {size} bytes; bytes and strings hold at most "
            f"{MAX_VALUE_BYTES} (64 KiB)",
        )
    return cast(Const, value)  # None or exactly an int, bytes, str or bool: checked above


@dataclass
class Scope:
    """What the functions of one contract see: its storage, constants and functions."""

    storage: dict[str, tuple[int, StorageVar]]
    constants: dict[str, Const]
    functions: dict[str, int]
    arity: dict[str, int]
