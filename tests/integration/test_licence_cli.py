"""`aichain-node licence offer|withdraw-offer|top-up|end|withdraw`, and what a buyer is told when a
licence is missing, spent or over, against a real dev node, as a user types them."""

from __future__ import annotations

import time
from pathlib import Path

from aichain_node import Client
from core.system_addresses import LICENSING
from node.bench.onnx_model import build_mlp
from tests.harness import NodeProcess
from tests.integration.support import fund, key_file, pending_nonce

AIC = 10**9


def test_owner_offers_and_withdraws_buyer_is_told_which_step_helps(cli: NodeProcess, tmp_path: Path) -> None:
    owner, buyer = fund(cli, 50 * AIC), fund(cli, 50 * AIC)
    owner_key, buyer_key = key_file(tmp_path, owner, "owner"), key_file(tmp_path, buyer, "buyer")
    name = f"lic-{owner.address.hex()[:8]}"
    for seed in (1, 2):
        cli.cli("model", "publish", str(build_mlp(tmp_path / f"v{seed}.onnx", seed=seed)), "--name", name,
                "--from", owner_key, "-q")  # fmt: skip

    # No offer anywhere yet: the buyer is told to ask the owners, not to buy.
    none = cli.cli("licence", "show", f"{name}@1", "--from", buyer_key, check=False)
    assert none.returncode == 1 and "has no open offer" in none.stderr and "licence offer" in none.stderr

    made = cli.cli_json("licence", "offer", f"{name}@1", "price=1,per-use=0.5", "--from", owner_key)
    assert made["offer"] == 1 and made["version"] == 1 and made["per_use_price"] == AIC // 2 and made["open"]
    assert "offer 1 for @1 (open): price 1 AIC" in cli.cli("model", "info", name).stdout
    stranger_offer = cli.cli("licence", "offer", f"{name}@1", "price=1", "--from", buyer_key, check=False)
    assert stranger_offer.returncode == 1 and "owner" in stranger_offer.stderr

    # @2 has no offer: the hint names the version that has one instead of "buy @2".
    no_offer = cli.cli("licence", "show", f"{name}@2", "--from", buyer_key, check=False)
    assert no_offer.returncode == 1
    assert f"{name}@2 has no open offer" in no_offer.stderr and f"{name}@1" in no_offer.stderr
    assert f"licence buy {name}@2" not in no_offer.stderr
    missing = cli.cli("licence", "show", f"{name}@1", "--from", buyer_key, check=False)
    assert f"buy one with `aichain-node licence buy {name}@1` (offer 1, 1 AIC)" in missing.stderr

    # Bought with one use's deposit; buying again is refused here, before a transaction is sent.
    bought = cli.cli_json("licence", "buy", f"{name}@1", "--deposit", "0.5", "--from", buyer_key)
    assert bought["valid"] and bought["deposit"] == AIC // 2
    nonce = pending_nonce(cli, buyer.address)
    again = cli.cli("licence", "buy", f"{name}@1", "--from", buyer_key, check=False)
    assert again.returncode == 1 and "never expires" in again.stderr and "licence top-up" in again.stderr
    assert pending_nonce(cli, buyer.address) == nonce, "a purchase the chain refuses must not be sent"

    # A cheaper second offer cannot be bought while the first licence runs.
    cli.cli("licence", "offer", f"{name}@1", "price=0.1,per-use=0.5", "--from", owner_key)
    other = cli.cli("licence", "buy", f"{name}@1", "--offer", "2", "--from", buyer_key, check=False)
    assert other.returncode == 1 and "under offer 1" in other.stderr and "licence end" in other.stderr
    assert pending_nonce(cli, buyer.address) == nonce
    withdrawn = cli.cli_json("licence", "withdraw-offer", name, "2", "--from", owner_key)
    assert withdrawn["open"] is False
    assert "offer 2 for @1 (withdrawn)" in cli.cli("model", "info", name).stdout

    # The deposit is spent by one use: the licence is shown as spent, and the step is a top-up.
    with Client(cli.url, buyer) as node:
        node.send(LICENSING, "report_usage", name, 1, 1)
        why = node.models.why_not_licensed(f"{name}@1")
    assert "deposit" in why and "licence top-up" in why and "buying again" in why
    spent = cli.cli("licence", "show", f"{name}@1", "--from", buyer_key)
    assert "per-use deposit is spent" in spent.stdout and "licence top-up" in spent.stdout
    topped = cli.cli_json("licence", "top-up", f"{name}@1", "--deposit", "1", "--from", buyer_key)
    assert topped["valid"] and topped["deposit"] == AIC

    # Ended: the deposit stays locked for the notice period, and the CLI says until when.
    ended = cli.cli("licence", "end", f"{name}@1", "--from", buyer_key)
    assert f"ended {name}@1" in ended.stdout and f"licence withdraw {name}@1" in ended.stdout
    assert f"sent to chain {cli.cli_json('status')['chain_id']} at {cli.url}" in ended.stdout
    early = cli.cli("licence", "withdraw", f"{name}@1", "--from", buyer_key, check=False)
    assert early.returncode == 1 and "can be withdrawn from" in early.stderr
    after_end = cli.cli("licence", "show", f"{name}@1", "--from", buyer_key)
    assert "has ended" in after_end.stdout and "costs the offer's price again" in after_end.stdout


def test_an_expired_licence_is_reported_as_ended_not_as_missing(cli: NodeProcess, tmp_path: Path) -> None:
    owner, buyer = fund(cli, 50 * AIC), fund(cli, 50 * AIC)
    owner_key, buyer_key = key_file(tmp_path, owner, "owner"), key_file(tmp_path, buyer, "buyer")
    name = f"exp-{owner.address.hex()[:8]}"
    cli.cli("model", "publish", str(build_mlp(tmp_path / "m.onnx", seed=3)), "--name", name,
            "--private", "--offer", "price=1,duration=2s", "--from", owner_key, "-q")  # fmt: skip
    cli.cli("licence", "buy", name, "--from", buyer_key)
    nonce = pending_nonce(cli, buyer.address)
    unmetered = cli.cli("licence", "top-up", name, "--deposit", "1", "--from", buyer_key, check=False)
    assert unmetered.returncode == 1 and "not metered per use" in unmetered.stderr
    assert pending_nonce(cli, buyer.address) == nonce
    time.sleep(2.5)
    fund(cli, 1)  # a block dated after the expiry: validity is judged at the head's time, and an idle chain waits
    shown = cli.cli("licence", "show", name, "--from", buyer_key)
    assert "has ended" in shown.stdout and "holds no licence" not in shown.stdout
    pulled = cli.cli("model", "pull", name, "--from", buyer_key, "-q", check=False)
    assert pulled.returncode == 1 and "ended at" in pulled.stderr and "costs the offer's price again" in pulled.stderr
    # Buying again extends it (same offer, expired): allowed, and valid again.
    again = cli.cli_json("licence", "buy", name, "--from", buyer_key)
    assert again["valid"]
