"""`<datadir>/node.json`: how to reach the node running on a data directory, while it runs.

It holds the process id, the RPC URL and the chain id. It is written (atomically: a temporary
file, then renamed) once the node listens, and removed when it stops, so a file left behind
names a node that did not stop cleanly.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

NAME = "node.json"


def write_node_file(datadir: Path, rpc_url: str, chain_id: int) -> None:
    info = {"pid": os.getpid(), "rpc": rpc_url, "chain_id": chain_id}
    path = datadir / NAME
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info))
    os.replace(tmp, path)


def remove_node_file(datadir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (datadir / NAME).unlink()
