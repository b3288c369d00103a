"""docs/architecture.md cannot rot silently: every file, folder and module it names exists, every link
stays inside this repository and lands, and the pages users read stand alone.

The page names modules as paths (`storage/kv.py`, `node/p2p/`) and as dotted names
(`vm.execution.check_stateless`); a move or rename that forgets the page fails here. The checker is
tested on a page with one mistake of each kind, so a checker that finds nothing cannot pass.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGE = DOCS / "architecture.md"
PACKAGES = ("aichain_node", "cli", "consensus", "core", "node", "storage", "vm")

_FENCE = re.compile(r"^```.*?^```", re.M | re.S)
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
_CODE_SPAN = re.compile(r"`([^`\n]+)`")
_PATH_SPAN = re.compile(r"[\w.-]+(?:/[\w.-]+)*/(?:[\w.-]+)?")  # has a slash: a file or a folder (ends with /)
_BARE_PATH = re.compile(r"(?<![\w./~<>-])[\w-]+(?:/[\w.-]+)+\.(?:py|md|contract|toml|json|pem)\b")
_DOTTED = re.compile(rf"(?:{'|'.join(PACKAGES)})(?:\.\w+)+")


def slug(heading: str) -> str:
    """The anchor a Markdown heading gets (GitHub's rule): lower case, punctuation dropped, spaces to dashes."""
    text = heading.strip().lower().replace("`", "")
    return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", text))


def anchors(text: str) -> set[str]:
    return {slug(h) for h in re.findall(r"^#{1,6}\s+(.*?)\s*#*$", _FENCE.sub("", text), flags=re.M)}


def _defined_names(tree: ast.Module | ast.ClassDef) -> dict[str, ast.AST]:
    """Names a module or class body defines: functions, classes, assignments, imports."""
    names: dict[str, ast.AST] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names[stmt.name] = stmt
        elif isinstance(stmt, ast.Assign):
            names.update((t.id, stmt) for t in stmt.targets if isinstance(t, ast.Name))
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            names[stmt.target.id] = stmt
        elif isinstance(stmt, ast.Import | ast.ImportFrom):
            names.update(((a.asname or a.name).split(".")[0], stmt) for a in stmt.names)
    return names


def dotted_problem(name: str, root: Path) -> str | None:
    """Why `package.module.Name[.attr]` does not resolve in the tree at `root` (read, not imported), or None."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        base = root.joinpath(*parts[:cut])
        source = base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
        if source.is_file():
            break
    else:
        return f"`{name}`: no module of it exists"
    scope: ast.Module | ast.ClassDef = ast.parse(source.read_text())
    for attr in parts[cut:]:
        found = _defined_names(scope).get(attr)
        if found is None:
            return f"`{name}`: {source.relative_to(root)} defines no {attr}"
        if not isinstance(found, ast.ClassDef):
            return None if attr == parts[-1] else f"`{name}`: {attr} is not a class in {source.relative_to(root)}"
        scope = found
    return None


def problems(page: Path, root: Path) -> list[str]:
    """Everything on `page` that points nowhere: missing paths, modules or names, external or broken links."""
    text = page.read_text()
    found: list[str] = []
    for target in _LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("/"):
            found.append(f"link to {target}: link only to files in this repository, relatively")
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            found.append(f"link to {target}: {path} does not exist")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text()):
            found.append(f"link to {target}: {dest.name} has no heading #{anchor}")
    named = {m for span in _CODE_SPAN.findall(text) for m in [span.strip()] if _PATH_SPAN.fullmatch(m)}
    named |= set(_BARE_PATH.findall(_CODE_SPAN.sub("", text)))
    for path in sorted(named):
        if not (root / path).exists():
            found.append(f"`{path}` does not exist")
    for span in sorted({s.strip() for s in _CODE_SPAN.findall(text)}):
        if _DOTTED.fullmatch(span) and (why := dotted_problem(span, root)) is not None:
            found.append(why)
    return found


def test_everything_the_architecture_page_names_exists() -> None:
    assert problems(PAGE, ROOT) == []


def test_the_page_names_real_modules_of_every_floor() -> None:
    """The page is about this code: each floor's package appears with files in it (not just the folder)."""
    text = PAGE.read_text()
    for package in PACKAGES:
        assert re.search(rf"`{package}/[\w/]+\.\w+`", text), f"docs/architecture.md names no file of {package}/"
    assert "## Layout of node/" in text


def test_node_files_are_named_only_in_the_layout_section() -> None:
    """node/ is being regrouped: its file names live in one section, so a move is one place to update."""
    text = PAGE.read_text()
    before, _, layout = text.partition("## Layout of node/")
    assert layout, "docs/architecture.md has no 'Layout of node/' section"
    outside = re.findall(r"(?<![\w/])node/[\w/]+\.\w+", before)
    assert outside == [], f"node/ files named outside 'Layout of node/': {outside}"
    assert len(set(re.findall(r"`node/[\w/]+\.py`", layout))) >= 20


def test_every_part_named_by_role_is_in_the_layout() -> None:
    """The other sections name node/'s parts in italics (*the driver*); each one is a row of the layout,
    so a reader can always find its file."""
    text = PAGE.read_text()
    before, _, layout = text.partition("## Layout of node/")
    parts = {
        row.split("|")[1].strip().lower() for row in layout.splitlines() if row.startswith("| ") and "`node/" in row
    }
    roles = {r.lower() for r in re.findall(r"(?<![*\w])\*([^*\n]+)\*(?![*\w])", before)} - {"…"}
    assert len(roles) >= 10
    assert roles - parts == set(), "parts named by role but missing from 'Layout of node/'"


def test_a_diagram_in_the_page_and_no_image_from_elsewhere() -> None:
    text = PAGE.read_text()
    diagrams = [block for block in _FENCE.findall(text) if "──▶" in block or "-->" in block]
    assert len(diagrams) >= 2, "the page shows the paths of a transaction and an artifact as diagrams"
    assert not re.search(r"!\[[^\]]*\]\((?!\.)", text), "images come from this repository only"


def test_the_checker_finds_each_kind_of_rot(tmp_path: Path) -> None:
    """A page with one mistake of each kind: each is reported, and the valid references are not."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "pkgs").mkdir()
    (tmp_path / "docs" / "other.md").write_text("# Other page\n\n## A part\n")
    (tmp_path / "vm").mkdir()
    (tmp_path / "vm" / "execution.py").write_text("class Ctx:\n    height: int = 0\n\ndef apply():\n    pass\n")
    page = tmp_path / "docs" / "page.md"
    page.write_text(
        "# Page\n\nSee [other](other.md#a-part), [here](#page), `vm/execution.py`, `vm/`, `vm.execution.apply`,\n"
        "`vm.execution.Ctx.height` and `<datadir>/artifacts`.\n"
        "Rot: [gone](gone.md), [bad anchor](other.md#no-such-part), [web](https://example.com/x),\n"
        "`vm/interpreter.py`, `node/`, `vm.execution.apply_block`, `vm.gas.TX_BASE`, `vm.execution.Ctx.round`.\n\n"
        "```text\nclient ──▶ storage/kv.py\n```\n"
    )
    found = problems(page, tmp_path)
    expected = [
        "link to gone.md: gone.md does not exist",
        "link to other.md#no-such-part: other.md has no heading #no-such-part",
        "link to https://example.com/x: link only to files in this repository, relatively",
        "`node/` does not exist",
        "`storage/kv.py` does not exist",
        "`vm/interpreter.py` does not exist",
        "`vm.execution.apply_block`: vm/execution.py defines no apply_block",
        "`vm.execution.Ctx.round`: vm/execution.py defines no round",
        "`vm.gas.TX_BASE`: no module of it exists",
    ]
    assert sorted(found) == sorted(expected)


def test_readme_lists_the_architecture_page() -> None:
    readme = (ROOT / "README.md").read_text()
    docs_list = next(p for p in readme.split("\n\n") if p.startswith("Documentation lives in"))
    assert "(docs/architecture.md)" in docs_list


def test_the_pages_users_read_stand_alone() -> None:
    """README and docs/ point to nothing outside this repository's tree of design notes."""
    pages = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
    for page in pages:
        text = page.read_text()
        assert "DESIGN.md" not in text, f"{page.relative_to(ROOT)} mentions DESIGN.md, which is not in this repository"
        assert "shared/" not in text, f"{page.relative_to(ROOT)} points into shared/, which is not in this repository"
