"""The contract language: a restricted subset of Python, compiled (via `ast`) to VM bytecode.

A contract is one module of:
- storage declarations: `name: type` at module level (`counter: int`, `owner: bytes`,
  `balances: Map[bytes, int]`); a scalar or a map, whose unset entries read as the zero of
  their value type (0, b"", "", False; None for anything else). Assigning to a storage
  name writes storage (no `global` needed); `m[k]`, `m[k] = v`, `del m[k]`, `k in m` read,
  write, delete and test a map entry; `m[a, b]` keys a map by the list [a, b];
- constants: `NAME = literal` (upper case), inlined where used;
- functions: `def`; `@public` makes one callable by transactions and other contracts,
  `@view` makes it public and read-only. Others are internal helpers.

Inside functions: assignments (also `+=` and friends), `if`/`elif`/`else`, `while`,
`for x in range(...)` and `for x in <list>`, `break`, `continue`, `return`, `pass`;
expressions on ints, bools, bytes, str, None, lists and dicts; calls to the contract's
functions, to builtins (`len require emit caller origin call_value self_address
block_height block_time native_balance pay sha256 verify_ed25519 call min max abs to_bytes
from_bytes str address_of`) and the methods `append pop get keys values`.

Everything else (imports, classes, floats, lambdas, closures, `global`, `try`, `with`,
attributes, comprehensions, `*args`, decorators other than the two above, ...) is a
`CompileError` that names the line (and column) and the rule broken. So is source that is not
UTF-8 text (a leading BOM is accepted, as Python does) or holds a NUL character, and a
contract over a limit of the bytecode (functions, storage variables, locals, constants,
instructions, code size, name length) or of values (256-bit integers, 64 KiB strings): what
compiles also deploys. Nothing else is ever raised: the compiler's own recursion is bounded
(expressions nest at most 100 deep), and a source too deep for Python's parser is refused at
its busiest line. The rules are in compile_rules.py; functions are compiled by
compile_function.py and compile_expr.py.
"""

from __future__ import annotations

import ast
import io
import sys
import tokenize
import warnings
from collections import Counter

from core import codec
from vm.bytecode import (
    MAX_CODE_BYTES,
    MAX_FUNCTIONS,
    MAX_STORAGE_VARS,
    BytecodeError,
    Const,
    Function,
    Module,
    StorageKind,
    StorageVar,
)
from vm.compile_function import FunctionCompiler
from vm.compile_rules import ZEROS, CompileError, Scope, check_name, fail, literal, what

__all__ = ["CompileError", "compile_contract", "source_text"]


def compile_contract(source: str | bytes) -> Module:
    """Compile contract source (text, or the bytes of a file) to a checked `Module`; raise `CompileError`
    naming the line and the rule broken."""
    tree = _parse(source_text(source))
    storage: dict[str, tuple[int, StorageVar]] = {}
    constants: dict[str, Const] = {}
    defs: list[ast.FunctionDef] = []
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is None:
            name = node.target.id
            check_name(node, name, stored=True)
            if name in storage:
                raise fail(node, f"storage variable {name} is declared twice")
            if len(storage) == MAX_STORAGE_VARS:
                raise fail(node, f"more than {MAX_STORAGE_VARS} storage variables (use a Map)")
            storage[name] = (len(storage), _storage_var(node, name))
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if not name.isupper():
                raise fail(node, f"module-level {name} = ...: constants are UPPER_CASE; storage is `{name}: type`")
            constants[name] = literal(node.value)
        elif isinstance(node, ast.FunctionDef):
            if any(d.name == node.name for d in defs):
                raise fail(node, f"a second function named {node.name}")
            if len(defs) == MAX_FUNCTIONS:
                raise fail(node, f"more than {MAX_FUNCTIONS} functions in one contract")
            defs.append(node)
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            continue  # a docstring
        else:
            raise fail(node, f"{what(node)} is not allowed at module level in a contract")
    scope = Scope(storage, constants, {d.name: i for i, d in enumerate(defs)}, {d.name: len(d.args.args) for d in defs})
    functions = tuple(_compile_function(scope, d) for d in defs)
    module = Module(functions, tuple(var for _, var in sorted(storage.values(), key=lambda p: p[0])))
    _check_size(module, defs)
    try:
        Module.decode(module.encode())  # what a deploy does with it
    except BytecodeError as exc:  # a contract the checks above let through: a bug of the compiler
        raise CompileError(f"internal compiler error (please report it with the source): {exc}", 1) from exc
    return module


def source_text(source: str | bytes) -> str:
    """The text of a contract: UTF-8 (a leading BOM dropped), without NUL characters."""
    if isinstance(source, bytes):
        try:
            text = source.decode("utf-8")
        except UnicodeDecodeError as exc:
            line, column = _position(source[: exc.start].decode("utf-8", "replace"))
            raise CompileError(
                f"the source is not UTF-8 text (byte 0x{source[exc.start]:02x}); save it as UTF-8", line, column
            ) from None
    else:
        text = source
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            line, column = _position(text[: exc.start])
            raise CompileError("the source holds a lone surrogate character, which is not text", line, column) from None
    text = text.removeprefix("\ufeff")
    nul = text.find("\x00")
    if nul >= 0:
        line, column = _position(text[:nul])
        raise CompileError("a NUL character (\\x00) is not allowed in source", line, column)
    return text


def _position(before: str) -> tuple[int, int]:
    """Line and column (from 1) of the character that follows `before`."""
    return before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1


def _parse(text: str) -> ast.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SyntaxWarnings of Python's own (e.g. "invalid escape sequence")
        try:
            return ast.parse(text)
        except SyntaxError as exc:
            message = exc.msg
            if "integer string conversion" in message:  # CPython's guard against quadratic int() parsing
                message = (
                    f"an integer literal of more than {sys.get_int_max_str_digits()} digits (contract "
                    "integers are 256-bit: at most 78 digits)"
                )
            raise CompileError(f"syntax error: {message}", exc.lineno or 1, exc.offset or None) from None
        except (RecursionError, MemoryError):
            raise CompileError(
                "nested too deeply for Python's parser (an expression too long, or an elif chain); "
                "split it with local variables or helper functions",
                _busiest_line(text),
            ) from None


def _busiest_line(text: str) -> int:
    """The line with the most tokens (where a parser that ran out of depth most likely gave up)."""
    counts: Counter[int] = Counter()
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            counts[token.start[0]] += 1
    except (tokenize.TokenError, SyntaxError):
        pass
    return counts.most_common(1)[0][0] if counts else 1


def _compile_function(scope: Scope, node: ast.FunctionDef) -> Function:
    try:
        return FunctionCompiler(scope, node).compile()
    except RecursionError:  # a backstop: expressions and blocks are bounded well below the recursion limit
        raise fail(node, f"function {node.name} is nested too deeply to compile; split it") from None


def _check_size(module: Module, defs: list[ast.FunctionDef]) -> None:
    """The encoded module within MAX_CODE_BYTES, or an error at the function that passes it."""
    total = len(module.encode())
    if total <= MAX_CODE_BYTES:
        return
    running, node = 0, defs[-1]
    for function, node in zip(module.functions, defs, strict=True):  # noqa: B007 - `node` is used after the loop
        running += len(codec.encode(function.to_wire()))
        if running > MAX_CODE_BYTES:
            break
    raise fail(
        node,
        f"the contract compiles to {total} bytes of code, over the limit of {MAX_CODE_BYTES} "
        f"({MAX_CODE_BYTES // 1024} KiB); it passes it at function {node.name}",
    )


def _storage_var(node: ast.AnnAssign, name: str) -> StorageVar:
    annotation = node.annotation
    if isinstance(annotation, ast.Subscript) and isinstance(annotation.value, ast.Name):
        if annotation.value.id != "Map":
            raise fail(node, f"storage {name}: only Map[key, value] is a generic storage type")
        value_type = annotation.slice.elts[-1] if isinstance(annotation.slice, ast.Tuple) else None
        if value_type is None:
            raise fail(node, f"storage {name}: write Map[key type, value type]")
        return StorageVar(name, StorageKind.MAP, _zero(value_type))
    return StorageVar(name, StorageKind.SCALAR, _zero(annotation))


def _zero(annotation: ast.expr) -> Const:
    return ZEROS.get(annotation.id) if isinstance(annotation, ast.Name) else None
