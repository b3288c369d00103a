"""The interpreter's loop compares opcodes with int literals, for speed (an `Op` member costs ~8x a
plain int on CPython 3.11, once per instruction): each literal must be the number of the opcode
its comment names, so that renumbering an opcode in vm/bytecode.py without the loop, or the loop
without the comment, fails here instead of running one instruction as another."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Mapping
from pathlib import Path

import vm.interpreter
from vm.bytecode import Op

SOURCE = Path(vm.interpreter.__file__).read_text()
OPCODES = {op.name: int(op) for op in Op}


def literal_opcodes(source: str) -> dict[int, list[int]]:
    """Line -> the int literals compared with `op` on that line (`op == 2`), in source order."""
    found: dict[int, list[int]] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare) and isinstance(node.left, ast.Name) and node.left.id == "op":
            for operator, right in zip(node.ops, node.comparators, strict=True):
                if isinstance(operator, ast.Eq | ast.NotEq) and isinstance(right, ast.Constant):
                    found.setdefault(node.lineno, []).append(right.value)
    return {line: sorted(values, key=lambda v: _column(source, line, v)) for line, values in found.items()}


def _column(source: str, line: int, value: int) -> int:
    return source.splitlines()[line - 1].find(f"op == {value}")


def comments(source: str) -> dict[int, str]:
    return {
        token.start[0]: token.string
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type == tokenize.COMMENT
    }


def mismatches(source: str, opcodes: Mapping[str, int]) -> list[str]:
    """Every literal whose line does not name, in its comment and in the same order, the opcodes
    whose numbers the literals are; and every opcode the loop tests twice."""
    notes = comments(source)
    problems = []
    seen: dict[int, int] = {}
    for line, values in sorted(literal_opcodes(source).items()):
        names = [word for word in re.findall(r"[A-Z][A-Z_]*", notes.get(line, "")) if word in opcodes]
        expected = [opcodes[name] for name in names]
        if expected != values:
            problems.append(f"line {line}: compares op with {values}, its comment names {names} = {expected}")
        if source.splitlines()[line - 1].lstrip().startswith(("if ", "elif ")):
            for value in values:
                if value in seen:
                    problems.append(f"line {line}: opcode {value} already has a branch at line {seen[value]}")
                seen[value] = line
    return problems


def test_every_literal_opcode_in_the_loop_is_the_opcode_its_comment_names() -> None:
    assert len(literal_opcodes(SOURCE)) >= 20  # the loop is where the check looks
    assert mismatches(SOURCE, OPCODES) == []


def test_the_check_fails_when_an_opcode_is_renumbered_in_one_place_only() -> None:
    renumbered = {**OPCODES, "LOAD": OPCODES["LOAD"] + 100}
    assert any("LOAD" in problem for problem in mismatches(SOURCE, renumbered))
    line = "if op == 2:  # LOAD"
    assert line in SOURCE
    assert mismatches(SOURCE.replace(line, "if op == 3:  # LOAD"), OPCODES)  # the literal, not the name
    assert mismatches(SOURCE.replace(line, "if op == 2:  # LOAD it"), OPCODES) == []
    assert mismatches(SOURCE.replace(line, "if op == 2:"), OPCODES)  # a literal with no name
    assert mismatches(SOURCE.replace(line, "if op == 3:  # STORE"), OPCODES)  # STORE tested twice
