# The part of vulture (2.11+) this repository uses (tools/dead_code.py); see typings/README.md.
from collections.abc import Iterable
from pathlib import Path

class Item:
    name: str
    typ: str
    filename: Path
    first_lineno: int
    last_lineno: int
    message: str
    confidence: int

class Vulture:
    def __init__(
        self,
        verbose: bool = False,
        ignore_names: list[str] | None = None,
        ignore_decorators: list[str] | None = None,
    ) -> None: ...
    def scavenge(self, paths: Iterable[str | Path], exclude: list[str] | None = None) -> None: ...
    def get_unused_code(self, min_confidence: int = 0, sort_by_size: bool = False) -> list[Item]: ...
