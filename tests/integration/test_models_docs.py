"""docs/models.md is a walkthrough that runs: its sh and python blocks, in order, in one directory,
against a real dev node, with the CLI on PATH. Other blocks (text, toml) are shown, not run.

Beyond "every block succeeds", the walkthrough's claims are checked: the refused pull says why,
the run gives scikit-learn's labels, the receipt holds, and the sales paid exactly the owners'
shares and the upstream royalty."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.harness import NodeProcess
from tests.integration.support import balance

DOC = Path(__file__).resolve().parents[2] / "docs" / "models.md"
BLOCKS = re.findall(r"^```(sh|python)\n(.*?)^```", DOC.read_text(), flags=re.S | re.M)
AIC = 10**9


def test_the_walkthrough_has_its_steps() -> None:
    text = "\n".join(code for _, code in BLOCKS)
    for step in (
        "model publish",
        "licence buy",
        "model pull",
        "model verify",
        "--record",
        "--check 1",
        "model receipts",
        "--parent iris@1",
        "model lineage",
        "--description",
        "model search",
        "dataset register",
        "--dataset",
        "licence offer",
        "licence withdraw-offer",
        "licence top-up",
        "licence end",
    ):
        assert step in text, f"docs/models.md no longer runs `{step}`"


def test_docs_models_walkthrough_runs(shared_node: NodeProcess, tmp_path: Path) -> None:
    work = tmp_path / "walkthrough"
    work.mkdir()
    venv_bin = str(Path(sys.executable).parent)
    env = {**shared_node.env, "AICHAIN_RPC": shared_node.url, "PATH": f"{venv_bin}:{shared_node.env['PATH']}"}
    env["AICHAIN_MODEL_CACHE"] = str(tmp_path / "models")
    env["AICHAIN_CONTENT_KEYS"] = str(tmp_path / "content-keys")

    def address(name: str) -> str:
        return json.loads(shared_node.cli("keys", "show", name, "--json").stdout)["address"]

    def balances() -> dict[str, int]:
        return {who: balance(shared_node, address(who)) for who in ("alice", "carol", "dan")}

    outputs: list[str] = []
    paid: dict[str, dict[str, int]] = {}
    for index, (language, code) in enumerate(BLOCKS, start=1):
        sale = re.search(r"licence buy (\S+) --from bob", code)
        before = balances() if sale else {}
        command = ["bash", "-euo", "pipefail", "-c", code] if language == "sh" else [sys.executable, "-c", code]
        done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=180)
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"block {index} of docs/models.md ({language}) failed:\n{code}\n---\n{output}"
        outputs.append(output)
        if sale:
            after = balances()
            paid[sale.group(1)] = {who: after[who] - before[who] for who in after}

    everything = "\n".join(outputs)
    (tmp_path / "walkthrough.log").write_text(everything)  # to read when an assertion below fails
    assert "task tabular-classification; licence CC-BY-4.0; tags iris, sklearn" in everything  # the card
    assert "iris  (1 version(s); tabular-classification, #iris #sklearn)" in everything  # found by search
    assert "holds no licence to iris@1" in everything and "refused, as it should be" in everything
    # The node that keeps the key serves no plaintext to an unsigned request, nor to Bob's before he buys.
    assert "plaintext: HTTP 401" in everything and "ciphertext: HTTP 200" in everything
    assert "holds no valid licence to the versions naming" in everything and "licence buy iris@1" in everything
    assert "scikit-learn says [0 0 1 1 2]" in everything
    assert "label int64 [5]:\n[0 0 1 1 2]" in everything  # the pulled, decrypted model agrees with scikit-learn
    assert "charged 0.1 AIC" in everything
    assert "iris@1 receipt #1 holds: same inputs, same outputs" in everything
    assert "ok:" in everything and "not iris@1" in everything  # the altered copy is refused
    # The owners were paid exactly: iris's price to Alice; iris-tree's split 70/30 after 25% upstream.
    assert paid["iris"] == {"alice": 5 * AIC, "carol": 0, "dan": 0}
    assert paid["iris-tree"] == {"alice": AIC // 2, "carol": 1_050_000_000, "dan": 450_000_000}
    lineage = json.loads((work / "lineage.json").read_text())
    assert "iris@1" in json.dumps(lineage), "the derived model's lineage names its parent"
    assert '"kind": "trained"' in json.dumps(lineage), "and the dataset Carol registered"
    assert (work / "lineage.dot").read_text().startswith("digraph")
    # Section 11: an offer made and withdrawn, a deposit topped up, a licence ended; its deposit stays locked.
    assert "offer 2 for @1 (open): price 50 AIC, perpetual" in everything
    assert "offer 2 for @1 (withdrawn)" in everything and "topped up iris@1" in everything
    assert "ended iris@1 at" in everything and "its deposit can be withdrawn from" in everything
    assert "not valid: it has ended" in everything
