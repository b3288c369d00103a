"""tools/dead_code.py (run by `make lint`): what it reports, and what its whitelist names still exists."""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def load(relative: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(Path(relative).stem, ROOT / relative)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write(root: Path, relative: str, source: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))


def test_reports_what_nothing_in_the_product_uses_wherever_it_is(tmp_path: Path) -> None:
    dead_code = load("tools/dead_code.py")
    write(tmp_path, "core/__init__.py", "")
    write(
        tmp_path,
        "core/things.py",
        """
        def used_by_cli(): return 1
        def used_by_nobody(): return 2
        def used_by_a_test_only(): return 3
        class Kept:
            def method_nobody_calls(self): return 4
    """,
    )
    write(tmp_path, "cli/__init__.py", "")
    write(
        tmp_path,
        "cli/user.py",
        """
        from core.things import Kept, used_by_cli
        def unused_in_cli(): return used_by_cli(), Kept()
    """,
    )
    write(tmp_path, "tests/test_things.py", "from core.things import used_by_a_test_only\nused_by_a_test_only()\n")
    found = dead_code.unused(tmp_path)
    names = sorted(line.split("'")[1] for line in found)
    # cli/ counts as a user; a test does not; cli/'s own dead code is reported like core/'s.
    assert names == ["method_nobody_calls", "unused_in_cli", "used_by_a_test_only", "used_by_nobody"], found
    assert {line.split(":")[0] for line in found} == {"core/things.py", "cli/user.py"}


def test_a_cli_command_is_used_by_being_registered(tmp_path: Path) -> None:
    dead_code = load("tools/dead_code.py")
    write(tmp_path, "cli/__init__.py", "")
    write(
        tmp_path,
        "cli/things_cmds.py",
        """
        import typer
        things_app = typer.Typer()
        @things_app.command("show")
        def show_things(): return 1
        def helper_nobody_calls(): return 2
    """,
    )
    found = dead_code.unused(tmp_path)
    assert [line.split("'")[1] for line in found] == ["helper_nobody_calls"], found


def test_the_whitelist_names_only_what_exists() -> None:
    # Importing it evaluates every name it lists: one removed or renamed fails here, not silently.
    load("tools/vulture_whitelist.py")


def test_the_floors_have_no_dead_code() -> None:
    dead_code = load("tools/dead_code.py")
    assert dead_code.unused() == []
