"""The stack rule: every function's code keeps its operand stack even, checked before it runs.

At each instruction the stack holds the same number of values whichever path led there
(as the JVM's verifier and EVM Object Format require), no instruction pops more values
than the stack holds, and nothing can grow the stack in a loop. So the interpreter never
pops an empty stack and never needs to check for it, and a frame's stack is bounded by its
code. Code the compiler emits always passes; hand-written bytecode that does not is refused
at deploy (`Fault.BAD_STACK`), the way `Module.decode` refuses malformed code.

`ITER_NEXT` pushes an item and True, or only False: it must be followed by the
`JUMP_IF_FALSE` that consumes the flag (its target then sees one value fewer than the
instruction after it), and no jump may land on that `JUMP_IF_FALSE`.
"""

from __future__ import annotations

from vm.bytecode import JUMPS, Function, Module, Op
from vm.faults import Fault, VMError

_PUSH1 = frozenset({Op.CONST, Op.LOAD, Op.DUP, Op.SLOAD})
_POP1 = frozenset({Op.STORE, Op.POP, Op.SSTORE, Op.MDEL})
_ONE_FOR_ONE = frozenset({Op.NEG, Op.NOT, Op.INVERT, Op.INDEX_CONST, Op.MLOAD, Op.MHAS})
_TWO_FOR_ONE = frozenset(
    {
        Op.ADD,
        Op.SUB,
        Op.MUL,
        Op.FLOORDIV,
        Op.MOD,
        Op.POW,
        Op.BITAND,
        Op.BITOR,
        Op.BITXOR,
        Op.LSHIFT,
        Op.RSHIFT,
        Op.EQ,
        Op.NE,
        Op.LT,
        Op.LE,
        Op.GT,
        Op.GE,
        Op.IN,
        Op.NOT_IN,
        Op.INDEX,
    }
)


def check_module(module: Module) -> None:
    """Raise `VMError(Fault.BAD_STACK)` for the first function whose code breaks the stack rule."""
    for function in module.functions:
        pc = _first_violation(module, function)
        if pc is not None:
            raise VMError(Fault.BAD_STACK, name=function.name, pc=pc)


def _effect(module: Module, op: int, arg: int) -> tuple[int, int]:
    """(values popped, values pushed) of one instruction other than jumps, ITER_NEXT and RETURN."""
    if op in _PUSH1:
        return (1, 2) if op == Op.DUP else (0, 1)
    if op in _POP1:
        return 1, 0
    if op in _ONE_FOR_ONE:
        return 1, 1
    if op in _TWO_FOR_ONE:
        return 2, 1
    if op == Op.NOP:
        return 0, 0
    if op == Op.CALL:
        return module.functions[arg].n_params, 1
    if op == Op.BUILTIN:
        return arg & 0xFF, 1
    if op == Op.METHOD:
        return (arg & 0xFF) + 1, 1
    if op == Op.BUILD_LIST:
        return arg, 1
    if op == Op.BUILD_DICT:
        return 2 * arg, 1
    if op == Op.STORE_INDEX:
        return 3, 0
    if op == Op.SLICE:
        return 3, 1
    if op == Op.MSTORE:
        return 2, 0
    raise AssertionError(f"opcode {op} has no stack effect")  # Module.decode refuses unknown opcodes


def _first_violation(module: Module, function: Function) -> int | None:
    """The instruction index (in pairs) where the rule first breaks, or None if the code keeps it."""
    code = function.pairs
    after_iter = {i + 1 for i, (op, _) in enumerate(code) if op == Op.ITER_NEXT}
    heights: list[int | None] = [None] * len(code)
    work: list[tuple[int, int]] = [(0, 0)]

    def reach(pc: int, height: int) -> bool:
        if pc >= len(code):
            return False
        seen = heights[pc]
        if seen is None:
            heights[pc] = height
            work.append((pc, height))
            return True
        return seen == height

    while work:
        pc, h = work.pop()
        op, arg = code[pc]
        if op in JUMPS and arg in after_iter:
            return pc  # a jump onto the flag test of a for loop
        if op == Op.RETURN:
            if h < 1:
                return pc
        elif op == Op.JUMP:
            if not reach(arg, h):
                return pc
        elif op in (Op.JUMP_IF_FALSE, Op.JUMP_IF_TRUE):
            if h < 1 or not (reach(arg, h - 1) and reach(pc + 1, h - 1)):
                return pc
        elif op in (Op.AND_JUMP, Op.OR_JUMP):
            if h < 1 or not (reach(arg, h) and reach(pc + 1, h - 1)):
                return pc
        elif op == Op.ITER_NEXT:
            if pc + 1 >= len(code) or code[pc + 1][0] != Op.JUMP_IF_FALSE:
                return pc
            # Walk its JUMP_IF_FALSE here: on True an item stays, on False nothing does.
            heights[pc + 1] = h + 1
            if not (reach(code[pc + 1][1], h) and reach(pc + 2, h + 1)):
                return pc + 1
        else:
            pops, pushes = _effect(module, op, arg)
            if h < pops or not reach(pc + 1, h - pops + pushes):
                return pc
    return None
