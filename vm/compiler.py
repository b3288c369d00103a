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
`CompileError` that names the line and the construct.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from core.errors import AichainError
from vm.bytecode import (
    BUILTIN_ARITY,
    METHOD_ARITY,
    Builtin,
    Const,
    Function,
    Method,
    Module,
    Op,
    StorageKind,
    StorageVar,
    verify,
)
from vm.values import INT_MAX, INT_MIN

BUILTINS: dict[str, Builtin] = {
    "len": Builtin.LEN, "require": Builtin.REQUIRE, "emit": Builtin.EMIT, "caller": Builtin.CALLER,
    "origin": Builtin.ORIGIN, "call_value": Builtin.VALUE, "self_address": Builtin.SELF,
    "block_height": Builtin.BLOCK_HEIGHT, "block_time": Builtin.BLOCK_TIME, "native_balance": Builtin.BALANCE,
    "pay": Builtin.TRANSFER, "sha256": Builtin.SHA256, "verify_ed25519": Builtin.VERIFY_ED25519,
    "call": Builtin.CALL_CONTRACT, "min": Builtin.MIN, "max": Builtin.MAX, "abs": Builtin.ABS,
    "to_bytes": Builtin.TO_BYTES, "from_bytes": Builtin.FROM_BYTES, "str": Builtin.STR,
    "address_of": Builtin.ADDRESS_OF, "chain_id": Builtin.CHAIN_ID,
}  # fmt: skip
METHODS: dict[str, Method] = {"append": Method.APPEND, "pop": Method.POP, "get": Method.GET,
                              "keys": Method.KEYS, "values": Method.VALUES}  # fmt: skip
ZEROS: dict[str, Const] = {"int": 0, "bytes": b"", "Address": b"", "str": "", "bool": False}
BINOPS = {ast.Add: Op.ADD, ast.Sub: Op.SUB, ast.Mult: Op.MUL, ast.FloorDiv: Op.FLOORDIV, ast.Mod: Op.MOD,
          ast.Pow: Op.POW, ast.BitAnd: Op.BITAND, ast.BitOr: Op.BITOR, ast.BitXor: Op.BITXOR,
          ast.LShift: Op.LSHIFT, ast.RShift: Op.RSHIFT}  # fmt: skip
COMPARE = {ast.Eq: Op.EQ, ast.NotEq: Op.NE, ast.Lt: Op.LT, ast.LtE: Op.LE, ast.Gt: Op.GT, ast.GtE: Op.GE,
           ast.In: Op.IN, ast.NotIn: Op.NOT_IN}  # fmt: skip
RESERVED = set(BUILTINS) | {"range", "public", "view", "Map", "True", "False", "None"}


class CompileError(AichainError):
    """Source outside the contract language, or wrong within it; the message names the line."""

    rpc_code = -32093


def _fail(node: ast.AST | None, what: str) -> CompileError:
    line = getattr(node, "lineno", None)
    return CompileError(f"line {line}: {what}" if line else what)


def _what(node: ast.AST) -> str:
    names = {ast.Import: "import", ast.ImportFrom: "import", ast.ClassDef: "class", ast.Lambda: "lambda",
             ast.ListComp: "list comprehension", ast.DictComp: "dict comprehension", ast.SetComp: "set",
             ast.GeneratorExp: "generator expression", ast.Set: "set", ast.Global: "global",
             ast.Nonlocal: "nonlocal", ast.Try: "try", ast.With: "with", ast.Raise: "raise (use require)",
             ast.Assert: "assert (use require)", ast.Attribute: "attribute access", ast.Starred: "*args",
             ast.AsyncFunctionDef: "async def", ast.Await: "await", ast.Yield: "yield", ast.YieldFrom: "yield",
             ast.JoinedStr: "f-string", ast.NamedExpr: "the := operator", ast.Match: "match"}  # fmt: skip
    return names.get(type(node), type(node).__name__)


def compile_contract(source: str) -> Module:
    """Compile contract source to a checked `Module`; raise `CompileError` naming the problem."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise CompileError(f"line {exc.lineno}: syntax error: {exc.msg}") from exc
    storage: dict[str, tuple[int, StorageVar]] = {}
    constants: dict[str, Const] = {}
    defs: list[ast.FunctionDef] = []
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is None:
            name = node.target.id
            _check_name(node, name)
            if name in storage:
                raise _fail(node, f"storage variable {name} is declared twice")
            storage[name] = (len(storage), _storage_var(node, name))
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if not name.isupper():
                raise _fail(node, f"module-level {name} = ...: constants are UPPER_CASE; storage is `{name}: type`")
            constants[name] = _literal(node.value)
        elif isinstance(node, ast.FunctionDef):
            defs.append(node)
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            continue  # a docstring
        else:
            raise _fail(node, f"{_what(node)} is not allowed at module level in a contract")
    index = {d.name: i for i, d in enumerate(defs)}
    if len(index) != len(defs):
        raise _fail(None, "two functions share a name")
    scope = _Scope(storage, constants, index, {d.name: len(d.args.args) for d in defs})
    functions = tuple(_FunctionCompiler(scope, d).compile() for d in defs)
    module = Module(functions, tuple(var for _, var in sorted(storage.values(), key=lambda p: p[0])))
    verify(module)
    return module


def _check_name(node: ast.AST, name: str) -> None:
    if name in RESERVED or name.startswith("_"):
        raise _fail(node, f"{name!r} is reserved (builtins and names starting with _)")


def _storage_var(node: ast.AnnAssign, name: str) -> StorageVar:
    annotation = node.annotation
    if isinstance(annotation, ast.Subscript) and isinstance(annotation.value, ast.Name):
        if annotation.value.id != "Map":
            raise _fail(node, f"storage {name}: only Map[key, value] is a generic storage type")
        value_type = annotation.slice.elts[-1] if isinstance(annotation.slice, ast.Tuple) else None
        if value_type is None:
            raise _fail(node, f"storage {name}: write Map[key type, value type]")
        return StorageVar(name, StorageKind.MAP, _zero(value_type))
    return StorageVar(name, StorageKind.SCALAR, _zero(annotation))


def _zero(annotation: ast.expr) -> Const:
    return ZEROS.get(annotation.id) if isinstance(annotation, ast.Name) else None


def _is_require(e: ast.expr) -> bool:
    return (isinstance(e, ast.Call) and isinstance(e.func, ast.Name) and e.func.id == "require"
            and not e.keywords and 1 <= len(e.args) <= 2 and not any(isinstance(a, ast.Starred) for a in e.args))


def _literal(node: ast.expr) -> Const:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        value = _literal(node.operand)
        if type(value) is not int:
            raise _fail(node, "only integers can be negated in a constant")
        return -value
    if not isinstance(node, ast.Constant) or not (node.value is None or type(node.value) in (int, bytes, str, bool)):
        raise _fail(node, f"a constant must be an int, bytes, str, bool or None literal, not {_what(node)}")
    if type(node.value) is int and not INT_MIN <= node.value <= INT_MAX:
        raise _fail(node, "integer literal outside the 256-bit range")
    return node.value  # type: ignore[no-any-return]


@dataclass
class _Scope:
    storage: dict[str, tuple[int, StorageVar]]
    constants: dict[str, Const]
    functions: dict[str, int]
    arity: dict[str, int]


@dataclass
class _Loop:
    start: int
    breaks: list[int] = field(default_factory=list)
    continues: list[int] = field(default_factory=list)


class _FunctionCompiler:
    def __init__(self, scope: _Scope, node: ast.FunctionDef) -> None:
        self.scope = scope
        self.node = node
        self.code: list[int] = []
        self.consts: list[Const] = []
        self.locals: dict[str, int] = {}
        self.loops: list[_Loop] = []

    def compile(self) -> Function:
        node = self.node
        _check_name(node, node.name)
        public = view = False
        for decorator in node.decorator_list:
            if isinstance(decorator, ast.Name) and decorator.id in ("public", "view"):
                public = True
                view = view or decorator.id == "view"
            else:
                raise _fail(decorator, "only @public and @view decorate contract functions")
        args = node.args
        if args.vararg or args.kwarg or args.kwonlyargs or args.posonlyargs or args.defaults:
            raise _fail(node, f"{node.name}: only plain positional parameters (no defaults, *args or **kwargs)")
        for arg in args.args:
            self._declare(arg, arg.arg)
        for statement in ast.walk(node):  # Python scoping: any assigned name is a local of the function
            stored = isinstance(statement, ast.Name) and isinstance(statement.ctx, ast.Store)
            if stored and statement.id not in self.scope.storage:  # type: ignore[attr-defined]
                self._declare(statement, statement.id)  # type: ignore[attr-defined]
        self._body(node.body)
        self._emit(Op.CONST, self._const(None))
        self._emit(Op.RETURN)
        return Function(node.name, len(args.args), len(self.locals), public, view, tuple(self.consts),
                        tuple(self.code))  # fmt: skip

    # --- emitting ---------------------------------------------------------------------------

    def _emit(self, op: Op, arg: int = 0) -> int:
        self.code += (int(op), arg)
        return len(self.code) - 2

    def _here(self) -> int:
        return len(self.code)

    def _patch(self, at: int, target: int) -> None:
        self.code[at + 1] = target

    def _const(self, value: Const) -> int:
        for i, existing in enumerate(self.consts):
            if type(existing) is type(value) and existing == value:
                return i
        self.consts.append(value)
        return len(self.consts) - 1

    def _declare(self, node: ast.AST, name: str) -> int:
        if name in self.locals:
            return self.locals[name]
        _check_name(node, name)
        if name in self.scope.storage or name in self.scope.constants or name in self.scope.functions:
            raise _fail(node, f"{name!r} is already a storage variable, constant or function of the contract")
        self.locals[name] = len(self.locals)
        return self.locals[name]

    def _temp(self) -> int:
        name = f"_t{len(self.locals)}"
        self.locals[name] = len(self.locals)
        return self.locals[name]

    # --- statements -------------------------------------------------------------------------

    def _body(self, body: list[ast.stmt]) -> None:
        for statement in body:
            self._statement(statement)

    def _statement(self, s: ast.stmt) -> None:
        if isinstance(s, ast.Assign):
            if len(s.targets) != 1:
                raise _fail(s, "one target per assignment (a = b = c is not supported)")
            self._assign(s.targets[0], s.value)
        elif isinstance(s, ast.AnnAssign):
            if s.value is None:
                raise _fail(s, "a local declaration needs a value")
            self._assign(s.target, s.value)
        elif isinstance(s, ast.AugAssign):
            self._augassign(s)
        elif isinstance(s, ast.Expr) and _is_require(s.value):
            self._require(s.value)  # type: ignore[arg-type]
        elif isinstance(s, ast.Expr):
            self._expr(s.value)
            self._emit(Op.POP)
        elif isinstance(s, ast.Return):
            self._expr(s.value) if s.value is not None else self._emit(Op.CONST, self._const(None))
            self._emit(Op.RETURN)
        elif isinstance(s, ast.If):
            self._if(s)
        elif isinstance(s, ast.While):
            self._while(s)
        elif isinstance(s, ast.For):
            self._for(s)
        elif isinstance(s, ast.Break | ast.Continue):
            if not self.loops:
                raise _fail(s, f"{type(s).__name__.lower()} outside a loop")
            jump = self._emit(Op.JUMP)
            (self.loops[-1].breaks if isinstance(s, ast.Break) else self.loops[-1].continues).append(jump)
        elif isinstance(s, ast.Pass):
            pass
        elif isinstance(s, ast.Delete):
            for target in s.targets:
                var = self._map_target(target)
                if var is None:
                    raise _fail(s, "del works on storage map entries only")
                self._map_key(target)  # type: ignore[arg-type]
                self._emit(Op.MDEL, var)
        else:
            raise _fail(s, f"{_what(s)} is not supported in contracts")

    def _assign(self, target: ast.expr, value: ast.expr) -> None:
        if isinstance(target, ast.Name):
            self._expr(value)
            self._store_name(target)
        elif isinstance(target, ast.Subscript):
            var = self._map_target(target)
            self._expr(value)
            if var is not None:
                self._map_key(target)
                self._emit(Op.MSTORE, var)
            else:
                if isinstance(target.slice, ast.Slice):
                    raise _fail(target, "assigning to a slice is not supported")
                self._expr(target.value)
                self._expr(target.slice)
                self._emit(Op.STORE_INDEX)
        else:
            raise _fail(target, f"cannot assign to {_what(target)} (one name or one subscript per assignment)")

    def _store_name(self, target: ast.Name) -> None:
        if target.id in self.scope.storage:
            var, decl = self.scope.storage[target.id]
            if decl.kind != StorageKind.SCALAR:
                raise _fail(target, f"{target.id} is a map: assign to its entries, {target.id}[key] = value")
            self._emit(Op.SSTORE, var)
        else:
            self._emit(Op.STORE, self.locals[target.id])

    def _augassign(self, s: ast.AugAssign) -> None:
        op = BINOPS.get(type(s.op))
        if op is None:
            raise _fail(s, f"the operator {type(s.op).__name__} is not supported")
        target = s.target
        if isinstance(target, ast.Name):
            self._name(target)
            self._expr(s.value)
            self._emit(op)
            self._store_name(target)
        elif isinstance(target, ast.Subscript) and not isinstance(target.slice, ast.Slice):
            key = self._temp()
            var = self._map_target(target)
            if var is not None:
                self._map_key(target)
                self._emit(Op.STORE, key)
                self._emit(Op.LOAD, key)
                self._emit(Op.MLOAD, var)
                self._expr(s.value)
                self._emit(op)
                self._emit(Op.LOAD, key)
                self._emit(Op.MSTORE, var)
            else:
                container = self._temp()
                self._expr(target.value)
                self._emit(Op.STORE, container)
                self._expr(target.slice)
                self._emit(Op.STORE, key)
                for n in (container, key):
                    self._emit(Op.LOAD, n)
                self._emit(Op.INDEX)
                self._expr(s.value)
                self._emit(op)
                for n in (container, key):
                    self._emit(Op.LOAD, n)
                self._emit(Op.STORE_INDEX)
        else:
            raise _fail(s, f"cannot update {_what(target)}")

    def _if(self, s: ast.If) -> None:
        self._expr(s.test)
        skip = self._emit(Op.JUMP_IF_FALSE)
        self._body(s.body)
        if s.orelse:
            end = self._emit(Op.JUMP)
            self._patch(skip, self._here())
            self._body(s.orelse)
            self._patch(end, self._here())
        else:
            self._patch(skip, self._here())

    def _while(self, s: ast.While) -> None:
        if s.orelse:
            raise _fail(s, "while-else is not supported in contracts")
        loop = _Loop(self._here())
        self._expr(s.test)
        exit_ = self._emit(Op.JUMP_IF_FALSE)
        self.loops.append(loop)
        self._body(s.body)
        self.loops.pop()
        self._emit(Op.JUMP, loop.start)
        self._close(loop, exit_, continue_to=loop.start)

    def _close(self, loop: _Loop, exit_: int, continue_to: int) -> None:
        self._patch(exit_, self._here())
        for at in loop.breaks:
            self._patch(at, self._here())
        for at in loop.continues:
            self._patch(at, continue_to)

    def _require(self, e: ast.Call) -> None:
        """`require(condition, message)` as a statement: the builtin runs (and reverts) only when the
        condition fails, so a check that holds costs its condition and one jump."""
        self._expr(e.args[0])
        over = self._emit(Op.JUMP_IF_TRUE)
        self._emit(Op.CONST, self._const(False))
        for arg in e.args[1:]:
            self._expr(arg)
        self._emit(Op.BUILTIN, (Builtin.REQUIRE << 8) | len(e.args))
        self._emit(Op.POP)
        self._patch(over, self._here())

    def _for(self, s: ast.For) -> None:
        if s.orelse:
            raise _fail(s, "for-else is not supported in contracts")
        if not isinstance(s.target, ast.Name) or s.target.id in self.scope.storage:
            raise _fail(s, "the loop variable must be one local name")
        var = self.locals[s.target.id]
        it = s.iter
        if isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.func.id == "range":
            self._for_range(s, it, var)
        else:
            self._for_sequence(s, it, var)

    def _for_range(self, s: ast.For, it: ast.Call, var: int) -> None:
        if it.keywords or not 1 <= len(it.args) <= 3:
            raise _fail(s, "range(stop), range(start, stop) or range(start, stop, step)")
        step = 1
        if len(it.args) == 3:
            step_value = _literal(it.args[2]) if not isinstance(it.args[2], ast.Name) else None
            if type(step_value) is not int or step_value == 0:
                raise _fail(s, "the step of range() must be a non-zero integer literal")
            step = step_value
        counter, stop = self._temp(), self._temp()
        if len(it.args) == 1:
            self._emit(Op.CONST, self._const(0))
        else:
            self._expr(it.args[0])
        self._emit(Op.STORE, counter)
        self._expr(it.args[0] if len(it.args) == 1 else it.args[1])
        self._emit(Op.STORE, stop)
        loop = _Loop(self._here())
        self._emit(Op.LOAD, counter)
        self._emit(Op.LOAD, stop)
        self._emit(Op.LT if step > 0 else Op.GT)
        exit_ = self._emit(Op.JUMP_IF_FALSE)
        self._emit(Op.LOAD, counter)
        self._emit(Op.STORE, var)
        self.loops.append(loop)
        self._body(s.body)
        self.loops.pop()
        increment = self._here()
        self._emit(Op.LOAD, counter)
        self._emit(Op.CONST, self._const(step))
        self._emit(Op.ADD)
        self._emit(Op.STORE, counter)
        self._emit(Op.JUMP, loop.start)
        self._close(loop, exit_, continue_to=increment)

    def _for_sequence(self, s: ast.For, it: ast.expr, var: int) -> None:
        """Over a list, bytes or str: ITER_NEXT walks it with an index kept in the local after it."""
        sequence, index = self._temp(), self._temp()
        self._expr(it)
        self._emit(Op.STORE, sequence)
        self._emit(Op.CONST, self._const(0))
        self._emit(Op.STORE, index)
        loop = _Loop(self._here())
        self._emit(Op.ITER_NEXT, sequence)
        exit_ = self._emit(Op.JUMP_IF_FALSE)
        self._emit(Op.STORE, var)
        self.loops.append(loop)
        self._body(s.body)
        self.loops.pop()
        self._emit(Op.JUMP, loop.start)
        self._close(loop, exit_, continue_to=loop.start)

    # --- expressions ------------------------------------------------------------------------

    def _expr(self, e: ast.expr) -> None:
        if isinstance(e, ast.Constant):
            self._emit(Op.CONST, self._const(_literal(e)))
        elif isinstance(e, ast.Name):
            self._name(e)
        elif isinstance(e, ast.BinOp):
            op = BINOPS.get(type(e.op))
            if op is None:
                raise _fail(e, f"the operator {type(e.op).__name__} is not supported (no floats: use //)")
            self._expr(e.left)
            self._expr(e.right)
            self._emit(op)
        elif isinstance(e, ast.UnaryOp):
            if isinstance(e.op, ast.USub) and isinstance(e.operand, ast.Constant):
                self._emit(Op.CONST, self._const(_literal(e)))
                return
            self._expr(e.operand)
            ops = {ast.USub: Op.NEG, ast.Not: Op.NOT, ast.Invert: Op.INVERT}
            if type(e.op) not in ops:
                raise _fail(e, "unary + is not supported")
            self._emit(ops[type(e.op)])  # type: ignore[index]
        elif isinstance(e, ast.BoolOp):
            jumps = []
            for value in e.values[:-1]:
                self._expr(value)
                jumps.append(self._emit(Op.AND_JUMP if isinstance(e.op, ast.And) else Op.OR_JUMP))
            self._expr(e.values[-1])
            for at in jumps:
                self._patch(at, self._here())
        elif isinstance(e, ast.Compare):
            self._compare(e)
        elif isinstance(e, ast.IfExp):
            self._expr(e.test)
            other = self._emit(Op.JUMP_IF_FALSE)
            self._expr(e.body)
            end = self._emit(Op.JUMP)
            self._patch(other, self._here())
            self._expr(e.orelse)
            self._patch(end, self._here())
        elif isinstance(e, ast.Call):
            self._call(e)
        elif isinstance(e, ast.Subscript):
            self._subscript(e)
        elif isinstance(e, ast.List):
            for item in e.elts:
                self._expr(item)
            self._emit(Op.BUILD_LIST, len(e.elts))
        elif isinstance(e, ast.Dict):
            for key, value in zip(e.keys, e.values, strict=True):
                if key is None:
                    raise _fail(e, "**unpacking in a dict is not supported")
                self._expr(key)
                self._expr(value)
            self._emit(Op.BUILD_DICT, len(e.keys))
        else:
            raise _fail(e, f"{_what(e)} is not supported in contracts")

    def _name(self, e: ast.Name) -> None:
        name = e.id
        if name in self.locals:
            self._emit(Op.LOAD, self.locals[name])
        elif name in self.scope.constants:
            self._emit(Op.CONST, self._const(self.scope.constants[name]))
        elif name in self.scope.storage:
            var, decl = self.scope.storage[name]
            if decl.kind != StorageKind.SCALAR:
                raise _fail(e, f"{name} is a map: read its entries, {name}[key]")
            self._emit(Op.SLOAD, var)
        else:
            raise _fail(e, f"name {name!r} is not defined (locals, constants and storage only)")

    def _compare(self, e: ast.Compare) -> None:
        if len(e.ops) == 1 and isinstance(e.ops[0], ast.In | ast.NotIn):
            var = self._map_name(e.comparators[0])
            if var is not None:
                if isinstance(e.left, ast.Tuple):  # `(a, b) in m`: the key m[a, b] is stored under
                    for part in e.left.elts:
                        self._expr(part)
                    self._emit(Op.BUILD_LIST, len(e.left.elts))
                else:
                    self._expr(e.left)
                self._emit(Op.MHAS, var)
                if isinstance(e.ops[0], ast.NotIn):
                    self._emit(Op.NOT)
                return
        self._expr(e.left)
        jumps = []
        for i, (op, right) in enumerate(zip(e.ops, e.comparators, strict=True)):
            code = COMPARE.get(type(op))
            if isinstance(op, ast.Is | ast.IsNot) and isinstance(right, ast.Constant) and right.value is None:
                code = Op.EQ if isinstance(op, ast.Is) else Op.NE  # `x is None`: only None has None's identity
            if code is None:
                raise _fail(e, f"the comparison {type(op).__name__} is not supported (`is` only as `is None`)")
            self._expr(right)
            if i < len(e.ops) - 1:  # a < b < c: keep b for the next comparison
                keep = self._temp()
                self._emit(Op.DUP)
                self._emit(Op.STORE, keep)
                self._emit(code)
                jumps.append(self._emit(Op.AND_JUMP))
                self._emit(Op.LOAD, keep)
            else:
                self._emit(code)
        for at in jumps:
            self._patch(at, self._here())

    def _call(self, e: ast.Call) -> None:
        func = e.func
        if isinstance(func, ast.Attribute):
            method = METHODS.get(func.attr)
            if method is None:
                raise _fail(e, f"method {func.attr}() is not supported")
            if e.keywords:
                raise _fail(e, "methods take positional arguments only")
            lo, hi = METHOD_ARITY[method]
            if not lo <= len(e.args) <= hi:
                raise _fail(e, f"{func.attr}() takes {lo}..{hi} arguments")
            self._expr(func.value)
            for arg in e.args:
                self._expr(arg)
            self._emit(Op.METHOD, (method << 8) | len(e.args))
            return
        if not isinstance(func, ast.Name):
            raise _fail(e, "only functions of the contract and builtins can be called")
        name = func.id
        if any(isinstance(a, ast.Starred) for a in e.args):
            raise _fail(e, "*args is not supported")
        if name in self.scope.functions:
            if e.keywords or len(e.args) != self.scope.arity[name]:
                raise _fail(e, f"{name}() takes {self.scope.arity[name]} positional arguments")
            for arg in e.args:
                self._expr(arg)
            self._emit(Op.CALL, self.scope.functions[name])
            return
        builtin = BUILTINS.get(name)
        if builtin is None:
            raise _fail(e, f"{name}() is not defined (contract functions and builtins only)")
        if builtin == Builtin.EMIT:
            if len(e.args) != 1 or any(k.arg is None for k in e.keywords):
                raise _fail(e, 'emit("Name", field=value, ...)')
            self._expr(e.args[0])
            for keyword in e.keywords:
                self._emit(Op.CONST, self._const(keyword.arg))
                self._expr(keyword.value)
            argc = 1 + 2 * len(e.keywords)
        elif builtin == Builtin.CALL_CONTRACT and e.keywords:
            # call(address, "function", *args, value=amount) sends `amount` units with the call
            if [k.arg for k in e.keywords] != ["value"] or not 2 <= len(e.args) <= 18:
                raise _fail(e, 'call(address, "function", arg, ..., value=amount)')
            builtin = Builtin.CALL_WITH_VALUE
            self._expr(e.args[0])
            self._expr(e.keywords[0].value)
            for arg in e.args[1:]:
                self._expr(arg)
            argc = len(e.args) + 1
        else:
            if e.keywords:
                raise _fail(e, f"{name}() takes positional arguments only")
            argc = len(e.args)
            lo, hi = BUILTIN_ARITY[builtin]
            if not lo <= argc <= hi:
                raise _fail(e, f"{name}() takes {lo}..{hi} arguments" if lo != hi else f"{name}() takes {lo}")
            for arg in e.args:
                self._expr(arg)
        if argc > 0xFF:
            raise _fail(e, "too many arguments")
        self._emit(Op.BUILTIN, (builtin << 8) | argc)

    def _subscript(self, e: ast.Subscript) -> None:
        var = self._map_target(e)
        if var is not None:
            self._map_key(e)
            self._emit(Op.MLOAD, var)
            return
        self._expr(e.value)
        if isinstance(e.slice, ast.Slice):
            if e.slice.step is not None:
                raise _fail(e, "slices with a step are not supported")
            for bound in (e.slice.lower, e.slice.upper):
                self._expr(bound) if bound is not None else self._emit(Op.CONST, self._const(None))
            self._emit(Op.SLICE)
        elif isinstance(e.slice, ast.Constant) and type(e.slice.value) is int:
            self._emit(Op.INDEX_CONST, self._const(e.slice.value))  # x[1]: one instruction, not two
        else:
            self._expr(e.slice)
            self._emit(Op.INDEX)

    def _map_name(self, e: ast.expr) -> int | None:
        if isinstance(e, ast.Name) and e.id in self.scope.storage:
            var, decl = self.scope.storage[e.id]
            return var if decl.kind == StorageKind.MAP else None
        return None

    def _map_target(self, e: ast.expr) -> int | None:
        return self._map_name(e.value) if isinstance(e, ast.Subscript) else None

    def _map_key(self, e: ast.Subscript) -> None:
        key = e.slice
        if isinstance(key, ast.Slice):
            raise _fail(e, "a map cannot be sliced")
        if isinstance(key, ast.Tuple):
            for part in key.elts:
                self._expr(part)
            self._emit(Op.BUILD_LIST, len(key.elts))
        else:
            self._expr(key)
