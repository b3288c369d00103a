"""Expressions of the contract language, compiled to stack code (the statements are in compile_function.py).

`ExpressionCompiler` holds what one function's code is built in: the instructions, the
constants and the locals, each checked against the bytecode's limits as it grows, so that a
function over a limit is refused at the line that crossed it. An expression leaves its value
on the stack; it may nest at most `MAX_EXPR_DEPTH` deep.
"""

from __future__ import annotations

import ast

from vm.bytecode import (
    BUILTIN_ARITY,
    MAX_CONSTS,
    MAX_INSTRUCTIONS,
    MAX_LOCALS,
    METHOD_ARITY,
    Builtin,
    Const,
    Op,
    StorageKind,
)
from vm.compile_rules import (
    BINOPS,
    BUILTINS,
    COMPARE,
    MAX_EXPR_DEPTH,
    MAX_LITERAL_ITEMS,
    METHODS,
    Scope,
    fail,
    literal,
    what,
)


class ExpressionCompiler:
    """The code of one function as it is built, and the compiling of its expressions."""

    def __init__(self, scope: Scope, node: ast.FunctionDef) -> None:
        self.scope = scope
        self.node = node
        self.code: list[int] = []
        self.consts: list[Const] = []
        self.locals: dict[str, int] = {}
        self.at: ast.AST = node  # the construct being compiled, for errors that arise in emitting
        self.depth = 0

    # --- emitting ---------------------------------------------------------------------------

    def _emit(self, op: Op, arg: int = 0) -> int:
        if len(self.code) >= 2 * MAX_INSTRUCTIONS:
            raise fail(
                self.at,
                f"function {self.node.name} compiles to more than {MAX_INSTRUCTIONS} instructions; "
                "split it into smaller functions",
            )
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
        if len(self.consts) >= MAX_CONSTS:
            raise fail(
                self.at,
                f"function {self.node.name} uses more than {MAX_CONSTS} distinct constants; "
                "split it into smaller functions",
            )
        self.consts.append(value)
        return len(self.consts) - 1

    def _new_local(self, node: ast.AST, name: str) -> int:
        if len(self.locals) >= MAX_LOCALS:
            raise fail(
                node,
                f"function {self.node.name} needs more than {MAX_LOCALS} local variables (parameters, "
                "variables, and one or two hidden ones per loop and chained comparison)",
            )
        self.locals[name] = len(self.locals)
        return self.locals[name]

    def _temp(self) -> int:
        return self._new_local(self.at, f"_t{len(self.locals)}")

    # --- expressions ------------------------------------------------------------------------

    def _expr(self, e: ast.expr) -> None:
        """Code that leaves the value of `e` on the stack."""
        self.depth += 1
        outer, self.at = self.at, e
        try:
            if self.depth > MAX_EXPR_DEPTH:
                raise fail(e, f"an expression nested more than {MAX_EXPR_DEPTH} deep; split it with local variables")
            self._expr_node(e)
        finally:
            self.depth -= 1
            self.at = outer

    def _expr_node(self, e: ast.expr) -> None:
        if isinstance(e, ast.Constant):
            self._emit(Op.CONST, self._const(literal(e)))
        elif isinstance(e, ast.Name):
            self._name(e)
        elif isinstance(e, ast.BinOp):
            op = BINOPS.get(type(e.op))
            if op is None:
                raise fail(e, f"the operator {type(e.op).__name__} is not supported (no floats: use //)")
            self._expr(e.left)
            self._expr(e.right)
            self._emit(op)
        elif isinstance(e, ast.UnaryOp):
            if isinstance(e.op, ast.USub) and isinstance(e.operand, ast.Constant):
                self._emit(Op.CONST, self._const(literal(e)))
                return
            self._expr(e.operand)
            ops = {ast.USub: Op.NEG, ast.Not: Op.NOT, ast.Invert: Op.INVERT}
            if type(e.op) not in ops:
                raise fail(e, "unary + is not supported")
            self._emit(ops[type(e.op)])
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
        elif isinstance(e, ast.List | ast.Dict) and _items(e) > MAX_LITERAL_ITEMS:
            raise fail(e, f"a {type(e).__name__.lower()} literal of more than {MAX_LITERAL_ITEMS} items")
        elif isinstance(e, ast.List):
            for item in e.elts:
                self._expr(item)
            self._emit(Op.BUILD_LIST, len(e.elts))
        elif isinstance(e, ast.Dict):
            for key, value in zip(e.keys, e.values, strict=True):
                if key is None:
                    raise fail(e, "**unpacking in a dict is not supported")
                self._expr(key)
                self._expr(value)
            self._emit(Op.BUILD_DICT, len(e.keys))
        else:
            raise fail(e, f"{what(e)} is not supported in contracts")

    def _name(self, e: ast.Name) -> None:
        name = e.id
        if name in self.locals:
            self._emit(Op.LOAD, self.locals[name])
        elif name in self.scope.constants:
            self._emit(Op.CONST, self._const(self.scope.constants[name]))
        elif name in self.scope.storage:
            var, decl = self.scope.storage[name]
            if decl.kind != StorageKind.SCALAR:
                raise fail(e, f"{name} is a map: read its entries, {name}[key]")
            self._emit(Op.SLOAD, var)
        else:
            raise fail(e, f"name {name!r} is not defined (locals, constants and storage only)")

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
                raise fail(e, f"the comparison {type(op).__name__} is not supported (`is` only as `is None`)")
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
                raise fail(e, f"method {func.attr}() is not supported")
            if e.keywords:
                raise fail(e, "methods take positional arguments only")
            lo, hi = METHOD_ARITY[method]
            if not lo <= len(e.args) <= hi:
                raise fail(e, f"{func.attr}() takes {lo}..{hi} arguments")
            self._expr(func.value)
            for arg in e.args:
                self._expr(arg)
            self._emit(Op.METHOD, (method << 8) | len(e.args))
            return
        if not isinstance(func, ast.Name):
            raise fail(e, "only functions of the contract and builtins can be called")
        name = func.id
        if any(isinstance(a, ast.Starred) for a in e.args):
            raise fail(e, "*args is not supported")
        if name in self.scope.functions:
            if e.keywords or len(e.args) != self.scope.arity[name]:
                raise fail(e, f"{name}() takes {self.scope.arity[name]} positional arguments")
            for arg in e.args:
                self._expr(arg)
            self._emit(Op.CALL, self.scope.functions[name])
            return
        builtin = BUILTINS.get(name)
        if builtin is None:
            raise fail(e, f"{name}() is not defined (contract functions and builtins only)")
        if builtin == Builtin.EMIT:
            if len(e.args) != 1 or any(k.arg is None for k in e.keywords):
                raise fail(e, 'emit("Name", field=value, ...)')
            most = (BUILTIN_ARITY[Builtin.EMIT][1] - 1) // 2
            if len(e.keywords) > most:
                raise fail(e, f"an event has at most {most} fields")
            self._expr(e.args[0])
            for keyword in e.keywords:
                self._emit(Op.CONST, self._const(keyword.arg))
                self._expr(keyword.value)
            argc = 1 + 2 * len(e.keywords)
        elif builtin == Builtin.CALL_CONTRACT and e.keywords:
            # call(address, "function", *args, value=amount) sends `amount` units with the call
            if [k.arg for k in e.keywords] != ["value"] or not 2 <= len(e.args) <= 18:
                raise fail(e, 'call(address, "function", arg, ..., value=amount)')
            builtin = Builtin.CALL_WITH_VALUE
            self._expr(e.args[0])
            self._expr(e.keywords[0].value)
            for arg in e.args[1:]:
                self._expr(arg)
            argc = len(e.args) + 1
        else:
            if e.keywords:
                raise fail(e, f"{name}() takes positional arguments only")
            argc = len(e.args)
            lo, hi = BUILTIN_ARITY[builtin]
            if not lo <= argc <= hi:
                raise fail(e, f"{name}() takes {lo}..{hi} arguments" if lo != hi else f"{name}() takes {lo}")
            for arg in e.args:
                self._expr(arg)
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
                raise fail(e, "slices with a step are not supported")
            for bound in (e.slice.lower, e.slice.upper):
                self._expr(bound) if bound is not None else self._emit(Op.CONST, self._const(None))
            self._emit(Op.SLICE)
        elif isinstance(e.slice, ast.Constant) and type(e.slice.value) is int:
            self._emit(Op.INDEX_CONST, self._const(literal(e.slice)))  # x[1]: one instruction, not two
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
            raise fail(e, "a map cannot be sliced")
        if isinstance(key, ast.Tuple):
            for part in key.elts:
                self._expr(part)
            self._emit(Op.BUILD_LIST, len(key.elts))
        else:
            self._expr(key)


def _items(e: ast.List | ast.Dict) -> int:
    return len(e.elts) if isinstance(e, ast.List) else len(e.keys)
