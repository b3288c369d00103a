"""The lineage picture's DOT text: labels are escaped once, so Graphviz draws what they say."""

from __future__ import annotations

import shutil
import subprocess

from aichain_node.provenance import to_dot

_GRAPH = {
    "model": 'fraud "v2"',
    "nodes": [
        {"id": "model:fraud", "kind": "model", "label": 'fraud "v2"'},
        {
            "id": "version:fraud@1",
            "kind": "version",
            "label": "fraud@1",
            "artifact": "sha256:" + "ab" * 32,
            "root": True,
        },
        {"id": "account:0x" + "11" * 20, "kind": "account", "label": "0x" + "11" * 20},
        {"id": "dataset:sha256:" + "cd" * 32, "kind": "dataset", "label": "sha256:" + "cd" * 32},
    ],
    "edges": [
        {"from": "model:fraud", "to": "version:fraud@1", "kind": "version"},
        {"from": "account:0x" + "11" * 20, "to": "model:fraud", "kind": "owns", "label": "100%"},
        {"from": "dataset:sha256:" + "cd" * 32, "to": "version:fraud@1", "kind": "trained"},
    ],
}


def test_a_version_box_breaks_its_label_into_two_lines() -> None:
    dot = to_dot(_GRAPH)
    assert '[label="fraud@1\\nsha256:abababababab…"' in dot
    assert "\\\\n" not in dot  # a backslash escaped twice would be drawn as a literal "\n"
    assert 'label="fraud \\"v2\\""' in dot  # quotes stay escaped once


def test_graphviz_draws_the_version_label_as_two_text_lines() -> None:
    program = shutil.which("dot")
    dot = to_dot(_GRAPH)
    if program is None:  # .ci/run installs Graphviz; the DOT text is still checked above
        assert dot.startswith("digraph")
        return
    svg = subprocess.run([program, "-Tsvg"], input=dot.encode(), capture_output=True, check=True, timeout=60).stdout
    text = svg.decode()
    assert ">fraud@1</text>" in text and ">sha256:abababababab…</text>" in text
    assert "\\n" not in text
