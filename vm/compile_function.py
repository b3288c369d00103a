"""Functions of the contract language: their signature, locals and statements, compiled to a `Function`.

The expressions are compiled by the base class (compile_expr.py). Python's scoping holds:
any name assigned anywhere in a function is a local of the whole function. Parameters are
plain, positional and distinct; decorators are `@public` and `@view` only.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import TypeGuard

from vm.bytecode import Builtin, Function, Op, StorageKind
from vm.compile_expr import ExpressionCompiler
from vm.compile_rules import BINOPS, check_name, fail, literal, what


@dataclass
class _Loop:
    start: int
    breaks: list[int] = field(default_factory=list)
    continues: list[int] = field(default_factory=list)


def is_require(e: ast.expr) -> TypeGuard[ast.Call]:
    return (
        isinstance(e, ast.Call)
        and isinstance(e.func, ast.Name)
        and e.func.id == "require"
        and not e.keywords
        and 1 <= len(e.args) <= 2
        and not any(isinstance(a, ast.Starred) for a in e.args)
    )


class FunctionCompiler(ExpressionCompiler):
    """Compiles one `def` of a contract."""

    loops: list[_Loop]

    def compile(self) -> Function:
        node = self.node
        self.loops = []
        check_name(node, node.name, stored=True)
        public = view = False
        for decorator in node.decorator_list:
            if isinstance(decorator, ast.Name) and decorator.id in ("public", "view"):
                public = True
                view = view or decorator.id == "view"
            else:
                raise fail(decorator, "only @public and @view decorate contract functions")
        args = node.args
        if args.vararg or args.kwarg or args.kwonlyargs or args.posonlyargs or args.defaults:
            raise fail(node, f"{node.name}: only plain positional parameters (no defaults, *args or **kwargs)")
        for arg in args.args:
            if arg.arg in self.locals:
                raise fail(arg, f"{node.name}: the parameter {arg.arg} is declared twice")
            self._declare(arg, arg.arg)
        for statement in ast.walk(node):  # Python scoping: any assigned name is a local of the function
            if (
                isinstance(statement, ast.Name)
                and isinstance(statement.ctx, ast.Store)
                and statement.id not in self.scope.storage
            ):
                self._declare(statement, statement.id)
        self._body(node.body)
        self.at = node.body[-1]
        self._emit(Op.CONST, self._const(None))
        self._emit(Op.RETURN)
        return Function(node.name, len(args.args), len(self.locals), public, view, tuple(self.consts), tuple(self.code))

    def _declare(self, node: ast.AST, name: str) -> int:
        if name in self.locals:
            return self.locals[name]
        check_name(node, name)
        if name in self.scope.storage or name in self.scope.constants or name in self.scope.functions:
            raise fail(node, f"{name!r} is already a storage variable, constant or function of the contract")
        return self._new_local(node, name)

    # --- statements -------------------------------------------------------------------------

    def _body(self, body: list[ast.stmt]) -> None:
        for statement in body:
            self._statement(statement)

    def _statement(self, s: ast.stmt) -> None:
        self.at = s
        if isinstance(s, ast.Assign):
            if len(s.targets) != 1:
                raise fail(s, "one target per assignment (a = b = c is not supported)")
            self._assign(s.targets[0], s.value)
        elif isinstance(s, ast.AnnAssign):
            if s.value is None:
                raise fail(s, "a local declaration needs a value")
            self._assign(s.target, s.value)
        elif isinstance(s, ast.AugAssign):
            self._augassign(s)
        elif isinstance(s, ast.Expr) and is_require(s.value):
            self._require(s.value)
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
                raise fail(s, f"{type(s).__name__.lower()} outside a loop")
            jump = self._emit(Op.JUMP)
            (self.loops[-1].breaks if isinstance(s, ast.Break) else self.loops[-1].continues).append(jump)
        elif isinstance(s, ast.Pass):
            pass
        elif isinstance(s, ast.Delete):
            for target in s.targets:
                var = self._map_target(target)
                if var is None or not isinstance(target, ast.Subscript):  # (a map entry is a Subscript)
                    raise fail(s, "del works on storage map entries only")
                self._map_key(target)
                self._emit(Op.MDEL, var)
        else:
            raise fail(s, f"{what(s)} is not supported in contracts")

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
                    raise fail(target, "assigning to a slice is not supported")
                self._expr(target.value)
                self._expr(target.slice)
                self._emit(Op.STORE_INDEX)
        else:
            raise fail(target, f"cannot assign to {what(target)} (one name or one subscript per assignment)")

    def _store_name(self, target: ast.Name) -> None:
        if target.id in self.scope.storage:
            var, decl = self.scope.storage[target.id]
            if decl.kind != StorageKind.SCALAR:
                raise fail(target, f"{target.id} is a map: assign to its entries, {target.id}[key] = value")
            self._emit(Op.SSTORE, var)
        else:
            self._emit(Op.STORE, self.locals[target.id])

    def _augassign(self, s: ast.AugAssign) -> None:
        op = BINOPS.get(type(s.op))
        if op is None:
            raise fail(s, f"the operator {type(s.op).__name__} is not supported")
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
            raise fail(s, f"cannot update {what(target)}")

    def _if(self, s: ast.If) -> None:
        """An `if` and its `elif`s, one after another (a long elif chain is no deeper than one if)."""
        ends = []
        while True:
            self._expr(s.test)
            skip = self._emit(Op.JUMP_IF_FALSE)
            self._body(s.body)
            if not s.orelse:
                self._patch(skip, self._here())
                break
            ends.append(self._emit(Op.JUMP))
            self._patch(skip, self._here())
            if len(s.orelse) == 1 and isinstance(s.orelse[0], ast.If):  # elif (or an else holding one if)
                s = s.orelse[0]
                self.at = s
                continue
            self._body(s.orelse)
            break
        for end in ends:
            self._patch(end, self._here())

    def _while(self, s: ast.While) -> None:
        if s.orelse:
            raise fail(s, "while-else is not supported in contracts")
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
            raise fail(s, "for-else is not supported in contracts")
        if not isinstance(s.target, ast.Name) or s.target.id in self.scope.storage:
            raise fail(s, "the loop variable must be one local name")
        var = self.locals[s.target.id]
        it = s.iter
        if isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.func.id == "range":
            self._for_range(s, it, var)
        else:
            self._for_sequence(s, it, var)

    def _for_range(self, s: ast.For, it: ast.Call, var: int) -> None:
        if it.keywords or not 1 <= len(it.args) <= 3:
            raise fail(s, "range(stop), range(start, stop) or range(start, stop, step)")
        step = 1
        if len(it.args) == 3:
            step_value = literal(it.args[2]) if not isinstance(it.args[2], ast.Name) else None
            if type(step_value) is not int or step_value == 0:
                raise fail(s, "the step of range() must be a non-zero integer literal")
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
