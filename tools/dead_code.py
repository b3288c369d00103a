"""Report code in the product that nothing in the product uses (vulture), for `make lint`.

Usage: python tools/dead_code.py   (from the repository root; exit 1 if anything is reported)

Every production package is read and reported: a definition counts as used if any package uses it.
The tests are not read:
a definition only a test reaches is reported too (a helper for tests belongs in tests/). What is
used in ways vulture cannot see, or kept on purpose, is named in tools/vulture_whitelist.py with
the reason beside it; CLI commands, which typer calls once a decorator has registered them, are
known by that decorator.
"""

from __future__ import annotations

import sys
from pathlib import Path

from vulture import Vulture

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("core", "storage", "vm", "consensus", "node", "aichain_node", "cli")  # those present are read
WHITELIST = ROOT / "tools" / "vulture_whitelist.py"
MIN_CONFIDENCE = 60  # vulture's lowest: unused functions, methods, classes, attributes, variables
# Functions called by name through what registered them: a CLI command (`@keys_app.command("new")`)
# by typer, a JSON-RPC method (`@registry.method`) by the requests that name it.
USED_BY_DECORATOR = ["@*_app.command", "@registry.method"]


def unused(root: Path = ROOT) -> list[str]:
    """One line per unused definition in the product, as `path:line: message (confidence)`."""
    vulture = Vulture(ignore_decorators=USED_BY_DECORATOR)
    vulture.scavenge([str(root / p) for p in PRODUCT if (root / p).is_dir()] + [str(WHITELIST)])
    found = []
    for item in vulture.get_unused_code(min_confidence=MIN_CONFIDENCE):
        path = Path(item.filename).resolve()
        if path != WHITELIST.resolve():
            found.append(f"{path.relative_to(root)}:{item.first_lineno}: {item.message} ({item.confidence}%)")
    return sorted(found)


def main() -> int:
    found = unused()
    for line in found:
        print(line)
    if found:
        print(
            f"{len(found)} unused definition(s) in {', '.join(PRODUCT)}: remove them, or name them in "
            f"{WHITELIST.relative_to(ROOT)} with the reason they stay"
        )
        return 1
    print(f"dead code: nothing unused in {', '.join(PRODUCT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
