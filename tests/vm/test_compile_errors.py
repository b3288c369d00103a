"""Every compile error names the line (and column) and the rule broken, never a Python traceback (issue 18,
finding 11); what compiles also deploys (it passes the checks a deploy makes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from vm.bytecode import MAX_CODE_BYTES, Module
from vm.compiler import CompileError, compile_contract

CLI = str(Path(sys.executable).with_name("aichain-node"))


def fn(name: str, body: str = "return 1", params: str = "") -> str:
    return f"@public\ndef {name}({params}):\n    {body}\n"


HOSTILE: list[tuple[str, bytes, int, str]] = [  # name, source, line, what the message says
    ("not_utf8", b"@public\ndef f():\n    return '\xff\xfe'\n", 3, "not UTF-8"),
    ("257_functions", "".join(fn(f"f{i}") for i in range(257)).encode(), 257 * 3 - 1, "more than 256 functions"),
    ("129_storage", ("".join(f"s{i}: int\n" for i in range(129)) + fn("f")).encode(), 129, "more than 128 storage"),
    ("string_over_64k", fn("f", "return '" + "a" * 70_000 + "'").encode(), 3, "at most 65536"),
    ("bytes_over_64k", ("DATA = b'" + "a" * 70_000 + "'\n" + fn("f")).encode(), 1, "at most 65536"),
    ("20000_terms", fn("f", "return " + "+".join(["1"] * 20_000)).encode(), 3, "split it"),
    ("900_terms", fn("f", "return " + "+".join(["1"] * 900)).encode(), 3, "nested more than 100 deep"),
    ("duplicate_params", fn("f", "return a", "a, a").encode(), 2, "parameter a is declared twice"),
    ("nul_byte", b"@public\ndef f():\n    return 1\x00\n", 3, "NUL character"),
    ("5000_digits", fn("f", "return " + "7" * 5000).encode(), 3, "at most 78 digits"),
    ("79_digits", fn("f", "return " + "7" * 79).encode(), 3, "256-bit range"),
    ("index_2_to_255", fn("f", f"return [1][{2**255}]").encode(), 3, "256-bit range"),  # found by the soak
    (
        "300_locals",
        ("@public\ndef f():\n" + "".join(f"    v{i} = {i}\n" for i in range(300))).encode(),
        259,
        "more than 256 local variables",
    ),
    (
        "1100_constants",
        ("@public\ndef f():\n    x = 0\n" + "".join(f"    x = {i + 1000}\n" for i in range(1100))).encode(),
        1027,
        "more than 1024 distinct constants",
    ),
    (
        "17000_instructions",
        ("@public\ndef f():\n    x = 0\n" + "    x = x + 1\n" * 5000).encode(),
        4099,
        "more than 16384 instructions",
    ),
    ("long_name", fn("f" * 65).encode(), 2, "at most 64"),
    ("two_functions_one_name", (fn("f") + fn("f")).encode(), 5, "a second function named f"),
    ("list_of_5000", fn("f", "return [" + "1," * 5000 + "]").encode(), 3, "more than 4096 items"),
    (
        "event_of_40_fields",
        fn("f", "emit('E', " + ", ".join(f"a{i}=1" for i in range(40)) + ")").encode(),
        3,
        "at most 32 fields",
    ),
    ("lone_surrogate", fn("f", "return '\\ud800'").encode(), 3, "valid Unicode"),
    (
        "code_over_96k",
        "".join(
            f"@public\ndef f{i}():\n    x = 0\n" + "    x = x + 1\n" * 1500 + "    return x\n" for i in range(10)
        ).encode(),
        2 + 8 * 1504,
        f"over the limit of {MAX_CODE_BYTES}",
    ),
    (
        "300_elifs",
        (
            "@public\ndef f(x):\n    if x == 0:\n        return 0\n"
            + "".join(f"    elif x == {i}:\n        return {i}\n" for i in range(1, 300))
            + "    return 1 / 2\n"
        ).encode(),
        603,
        "Div is not supported",
    ),
]


@pytest.mark.parametrize(("source", "line", "says"), [case[1:] for case in HOSTILE], ids=[c[0] for c in HOSTILE])
def test_hostile_source_is_a_compile_error_with_its_line(source: bytes, line: int, says: str) -> None:
    with pytest.raises(CompileError) as caught:
        compile_contract(source)
    error = caught.value
    assert error.line == line, str(error)
    assert says in str(error)
    assert str(error).startswith(f"line {line}: ")
    assert "sys." not in str(error) and "None" not in str(error)


def test_a_utf8_bom_is_accepted_as_python_does() -> None:
    plain = compile_contract(fn("f"))
    assert compile_contract(b"\xef\xbb\xbf" + fn("f").encode()).code_hash == plain.code_hash
    assert compile_contract("\ufeff" + fn("f")).code_hash == plain.code_hash


def test_long_elif_chains_and_deep_nesting_within_the_limits_compile_and_deploy() -> None:
    elifs = "@public\ndef f(x):\n    if x == 0:\n        return 0\n"
    elifs += "".join(f"    elif x == {i}:\n        return {i}\n" for i in range(1, 500)) + "    return -1\n"
    nested = fn("f", "return " + "(" * 90 + "1" + ")" * 90)
    sums = fn("f", "return " + "+".join(["1"] * 95))
    for source in (elifs, nested, sums):
        module = compile_contract(source)
        assert Module.decode(module.encode()) == module  # what a deploy checks


def test_the_cli_prints_one_line_naming_the_file_and_line(tmp_path: Path) -> None:
    runner = CliRunner()
    for name, source, line, says in HOSTILE:
        path = tmp_path / f"{name}.py"
        path.write_bytes(source)
        result = runner.invoke(app, ["contract", "compile", str(path)])
        assert result.exit_code == 1, (name, result.output, result.exception)
        assert result.exception is None or isinstance(result.exception, SystemExit), (name, result.exception)
        assert f"error: {path}: line {line}: " in result.output and says in result.output, (name, result.output)
        assert "Traceback" not in result.output


def test_the_installed_cli_on_a_non_utf8_file_exits_1_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "latin1.py"
    path.write_bytes("@public\ndef f():\n    return 'café'\n".encode("latin-1"))
    result = subprocess.run([CLI, "contract", "compile", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: {path}: line 3: the source is not UTF-8 text (byte 0xe9); save it as UTF-8 (column 16)"
    ), result.stderr


def test_deploying_or_calling_with_hostile_input_ends_in_one_line_before_any_rpc(tmp_path: Path) -> None:
    runner = CliRunner()
    nowhere = "http://127.0.0.1:9"  # nothing listens: each refusal must come before the node is asked
    path = tmp_path / "deep.py"
    path.write_bytes(fn("f", "return " + "+".join(["1"] * 20_000)).encode())
    result = runner.invoke(app, ["contract", "deploy", str(path), "--from", "dev", "--rpc", nowhere])
    assert result.exit_code == 1 and f"error: {path}: line 3: " in result.output, result.output
    fine = tmp_path / "fine.py"
    fine.write_text(fn("constructor", "pass", "n"))
    for bad in ("7" * 5000, str(2**256), "[" * 20 + "]" * 20):
        for args in (["deploy", str(fine), bad, "--from", "dev"], ["call", "0x" + "00" * 20, "f", bad]):
            result = runner.invoke(app, ["contract", *args, "--rpc", nowhere])
            assert result.exit_code == 1, (args, result.output, result.exception)
            assert result.output.startswith("error: ") and result.output.count("\n") == 1, result.output
            assert "Traceback" not in result.output and "sys." not in result.output
