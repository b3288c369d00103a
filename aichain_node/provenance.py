"""The provenance of a model, read from the chain: its lineage DAG as data, text and Graphviz DOT.

The graph holds every version of the model and every version it descends from (through
`parents`, across models), the datasets each was trained on, the owners of each model with
their shares, the licences sold for the model's versions, and the inference receipts
recorded against them. Edges point from the older thing to what was made from or for it:

    dataset --trained--> version,  parent version --derived--> version,
    owner --owns--> model,  version --licensed--> licensee,  version --ran--> receipt

`lineage_graph` builds it; `to_text`, `to_dot` render it; `render_image` runs Graphviz's
`dot` when it is installed.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path
from typing import Any, Protocol

from core.artifact import format_id
from core.errors import AichainError
from core.keys import address_hex, parse_address
from core.system_addresses import INFERENCE, LICENSING

MAX_RECEIPTS = 50  # per version, newest first; the count is always complete


class GraphvizMissing(AichainError):
    """The `dot` program is not installed, so the graph cannot be drawn (its DOT text still can)."""


class Views(Protocol):
    """Read-only contract calls (`AsyncClient.view`)."""

    async def view(self, contract: bytes, function: str, *args: Any) -> Any: ...


class Registry(Protocol):
    """What the lineage is read from: the model registry (`aichain_node.models.AsyncModels`) and the
    client it reads through."""

    @property
    def client(self) -> Views: ...
    async def info(self, name: str) -> dict[str, Any]: ...
    async def version(self, ref: str) -> dict[str, Any]: ...
    async def versions(self, name: str) -> list[dict[str, Any]]: ...
    async def events(self, contract: bytes, name: str) -> list[dict[str, Any]]: ...


def _vid(name: str, version: int) -> str:
    return f"{name}@{version}"


async def lineage_graph(models: Registry, name: str, *, receipts: int = MAX_RECEIPTS) -> dict[str, Any]:
    """The lineage DAG of `name` as {"model", "nodes": [...], "edges": [...]}, every value JSON-ready."""
    view = models.client.view
    versions = await models.versions(name)
    nodes: dict[str, dict[str, Any]] = {}
    edges: list[dict[str, str]] = []
    seen_versions: dict[str, dict[str, Any]] = {}
    pending: list[tuple[str, int, dict[str, Any] | None]] = [(v["model"], v["version"], v) for v in versions]
    while pending:  # walk parents across models, each version once
        model, number, known = pending.pop()
        key = _vid(model, number)
        if key in seen_versions:
            continue
        version = known or await models.version(key)
        seen_versions[key] = version
        for parent in version["parents"]:
            parent_name, _, parent_number = parent.rpartition("@")
            pending.append((parent_name, int(parent_number), None))
    model_names = sorted({v["model"] for v in seen_versions.values()})
    infos = await asyncio.gather(*(models.info(m) for m in model_names))
    for info in infos:
        nodes[f"model:{info['model']}"] = {
            "id": f"model:{info['model']}",
            "kind": "model",
            "label": info["model"],
            "format": info["format"],
            "versions": info["versions"],
        }
        for owner in info["owners"]:
            owner_id = f"account:{owner['address']}"
            nodes.setdefault(owner_id, {"id": owner_id, "kind": "account", "label": owner["address"]})
            edges.append(
                {"from": owner_id, "to": f"model:{info['model']}", "kind": "owns", "label": f"{owner['bps'] / 100:g}%"}
            )
    for key, version in sorted(seen_versions.items()):
        vid = f"version:{key}"
        nodes[vid] = {
            "id": vid,
            "kind": "version",
            "label": key,
            "artifact": version["artifact"],
            "publisher": version["publisher"],
            "height": version["height"],
            "root": version["model"] == name,
        }
        edges.append({"from": f"model:{version['model']}", "to": vid, "kind": "version"})
        for parent in version["parents"]:
            edges.append({"from": f"version:{parent}", "to": vid, "kind": "derived"})
        for dataset in version["datasets"]:
            did = f"dataset:{dataset}"
            nodes.setdefault(did, {"id": did, "kind": "dataset", "label": dataset})
            edges.append({"from": did, "to": vid, "kind": "trained"})
    for licence in await _licences_of(models, name):
        lid = f"account:{licence['licensee']}"
        nodes.setdefault(lid, {"id": lid, "kind": "account", "label": licence["licensee"]})
        edges.append(
            {
                "from": f"version:{_vid(name, licence['version'])}",
                "to": lid,
                "kind": "licensed",
                "label": f"offer {licence['offer']}",
            }
        )
    for version in versions:
        number = version["version"]
        count = int(await view(INFERENCE, "receipt_count_of", name, number))
        nodes[f"version:{_vid(name, number)}"]["receipts"] = count
        first = max(1, count - receipts + 1)
        rows = await view(INFERENCE, "receipts_of", name, number, first, receipts) if count and receipts else []
        for row in rows:
            rid = "receipt:0x" + bytes(row[1]).hex()
            nodes[rid] = {
                "id": rid,
                "kind": "receipt",
                "label": "0x" + bytes(row[1]).hex()[:12] + "…",
                "number": row[0],
                "runner": address_hex(row[4]),
                "height": row[5],
                "charged": row[6],
            }
            edges.append({"from": f"version:{_vid(name, number)}", "to": rid, "kind": "ran"})
    return {"model": name, "nodes": list(nodes.values()), "edges": edges}


async def _licences_of(models: Registry, name: str) -> list[dict[str, Any]]:
    found: dict[tuple[int, str], dict[str, Any]] = {}
    for event in await models.events(LICENSING, "Licensed"):
        fields = event["fields"]
        if fields["model"] == name:
            found[(int(fields["version"]), fields["licensee"])] = {
                "version": int(fields["version"]),
                "licensee": address_hex(parse_address(fields["licensee"])),
                "offer": int(fields["offer"]),
            }
    return list(found.values())


def to_text(graph: dict[str, Any]) -> str:
    """An indented reading of the graph: each version with where it came from and what followed."""
    nodes = {n["id"]: n for n in graph["nodes"]}
    into: dict[str, list[dict[str, str]]] = {}
    out_of: dict[str, list[dict[str, str]]] = {}
    for edge in graph["edges"]:
        into.setdefault(edge["to"], []).append(edge)
        out_of.setdefault(edge["from"], []).append(edge)
    lines: list[str] = []
    for model in (n for n in graph["nodes"] if n["kind"] == "model"):
        owners = ", ".join(f"{e['from'].removeprefix('account:')} {e['label']}" for e in into.get(model["id"], []))
        lines.append(f"{model['label']}  ({model['format']}, {model['versions']} version(s); owners {owners})")
        for edge in out_of.get(model["id"], []):
            version = nodes[edge["to"]]
            lines.append(f"  {version['label']}  {version['artifact']}  height {version['height']}")
            for source in into.get(version["id"], []):
                if source["kind"] == "derived":
                    lines.append(f"    derived from {source['from'].removeprefix('version:')}")
                elif source["kind"] == "trained":
                    lines.append(f"    trained on {source['from'].removeprefix('dataset:')}")
            licensees = [e for e in out_of.get(version["id"], []) if e["kind"] == "licensed"]
            for licence in licensees:
                lines.append(f"    licensed to {licence['to'].removeprefix('account:')} ({licence['label']})")
            if "receipts" in version:
                lines.append(f"    {version['receipts']} inference receipt(s)")
                for ran in (e for e in out_of.get(version["id"], []) if e["kind"] == "ran"):
                    receipt = nodes[ran["to"]]
                    lines.append(
                        f"      #{receipt['number']} {ran['to'].removeprefix('receipt:')} by "
                        f"{receipt['runner']} at height {receipt['height']}"
                    )
    return "\n".join(lines)


_SHAPES = {"model": "folder", "version": "box", "dataset": "cylinder", "account": "ellipse", "receipt": "note"}


def _quote(text: str) -> str:
    """A DOT string literal; a newline in `text` becomes DOT's line break, escaped once."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(graph: dict[str, Any]) -> str:
    """The graph in Graphviz's DOT language (render with `dot -Tsvg`)."""
    lines = [f"digraph {_quote('lineage of ' + graph['model'])} {{", "  rankdir=LR;", "  node [fontsize=10];"]
    for node in graph["nodes"]:
        label = node["label"]
        if node["kind"] == "account":
            label = label[:10] + "…"
        elif node["kind"] == "dataset":
            label = format_id(bytes.fromhex(label.removeprefix("sha256:")))[:19] + "…"
        elif node["kind"] == "version":
            label = f"{label}\n{node['artifact'][:19]}…"
        style = ", style=bold" if node.get("root") else ""
        lines.append(f"  {_quote(node['id'])} [label={_quote(label)}, shape={_SHAPES[node['kind']]}{style}];")
    for edge in graph["edges"]:
        label = edge["kind"] + (f" {edge['label']}" if "label" in edge else "")
        lines.append(f"  {_quote(edge['from'])} -> {_quote(edge['to'])} [label={_quote(label)}, fontsize=8];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_image(dot: str, dest: Path) -> Path:
    """Draw DOT text to an image with Graphviz (format from the suffix: .svg, .png, .pdf)."""
    program = shutil.which("dot")
    if program is None:
        raise GraphvizMissing(
            "Graphviz's `dot` is not installed (apt install graphviz); write the DOT text with "
            "--dot instead and render it elsewhere"
        )
    fmt = dest.suffix.lstrip(".") or "svg"
    subprocess.run([program, f"-T{fmt}", "-o", str(dest)], input=dot.encode(), check=True, timeout=60)
    return dest


__all__ = ["GraphvizMissing", "lineage_graph", "render_image", "to_dot", "to_text"]
