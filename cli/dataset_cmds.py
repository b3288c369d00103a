"""`aichain-node dataset …`: register the datasets models are trained on, and look them up.

A dataset is named by its artifact id: the SHA-256 of its file (or the listing id of a
directory), the same id `artifact put` gives. A version names the datasets it was trained on
(`model publish --dataset sha256:…`), and the chain refuses a dataset that is not registered.

For example:

    aichain-node dataset register iris.csv --terms CC-BY-4.0 --from alice   # hashed here
    aichain-node dataset register iris.csv --upload --terms CC-BY-4.0 --from alice   # and stored
    aichain-node dataset register sha256:3fc7… --owner alice:70% --owner bob:30% --from alice
    aichain-node dataset list
    aichain-node dataset info sha256:3fc7…
"""

from __future__ import annotations

from pathlib import Path

import typer

from aichain_node.terms import parse_owners
from aichain_node.transfer import local_id
from cli.common import (
    AdminTokenFileOption,
    JsonOption,
    KeystoreOption,
    PasswordFileOption,
    RpcOption,
    emit,
    fail,
    rpc_url,
    sdk_client,
    sent_to,
)
from cli.model_common import connect, guarded, owner_spec
from core.artifact import format_id, parse_id

dataset_app = typer.Typer(
    help="Register datasets (by their sha256) so model versions can name what they were trained on.",
    no_args_is_help=True,
)


def _dataset_id(source: str) -> tuple[str, Path | None]:
    """(`sha256:…`, the local path if `source` is one): an id is taken as it is, a path is hashed."""
    path = Path(source)
    if path.exists():
        return format_id(guarded(lambda: local_id(path))), path
    if source.startswith("sha256:"):
        return format_id(guarded(lambda: parse_id(source))), None
    fail(f"{source} is neither a file or directory here nor a dataset id (sha256:…)")


@dataset_app.command("register")
def register(
    source: str = typer.Argument(..., help="The dataset: a file or directory (hashed here), or its id sha256:…"),
    terms: str = typer.Option("", "--terms", help="Its terms of use: an SPDX id (CC-BY-4.0) or a short text"),
    owner: list[str] = typer.Option(
        [], "--owner", help="OWNER:SHARE, an address or a key name, e.g. carol:60% (repeatable; default: you, 100%)"
    ),
    upload: bool = typer.Option(False, "--upload", help="Also store the bytes on the node (pinned)"),
    sender: str = typer.Option(..., "--from", help="Registrant key"),
    rpc: str | None = RpcOption,
    keystore: Path | None = KeystoreOption,
    password_file: Path | None = PasswordFileOption,
    admin_token_file: Path | None = AdminTokenFileOption,
    as_json: bool = JsonOption,
) -> None:
    """Register a dataset on chain, with its owners and terms, so versions can name it."""
    dataset, path = _dataset_id(source)
    if upload and path is None:
        fail("--upload needs the dataset's file or directory, not its id")
    owners = guarded(lambda: parse_owners([owner_spec(o, keystore) for o in owner])) if owner else None
    with connect(rpc, sender, keystore, password_file, admin_token_file=admin_token_file) as node:
        if upload and path is not None:
            stored = guarded(lambda: node.upload(path))
            if stored["id"] != dataset:  # the node hashed what it received: it must be what was hashed here
                fail(f"the node stored {stored['id']}, not {dataset}: did {path} change while it was read?")
        receipt = guarded(lambda: node.models.register_dataset(dataset, terms=terms, owners=owners))
        registered = guarded(lambda: node.models.dataset_info(dataset))
        where = sent_to(node)
    registered["height"] = receipt["block_height"]
    lines = [f"registered {dataset} at height {receipt['block_height']}" + ("  (stored on the node)" if upload else "")]
    lines.append(f"train on it: aichain-node model publish MODEL.onnx --name NAME --dataset {dataset} --from KEY")
    emit(registered, as_json, "\n".join([*lines, where]))


@dataset_app.command("info")
def info(
    dataset: str = typer.Argument(..., help="The dataset's id (sha256:…), or its file here (hashed)"),
    rpc: str | None = RpcOption,
    as_json: bool = JsonOption,
) -> None:
    """A dataset's owners, terms and registrant."""
    dataset_id, _ = _dataset_id(dataset)
    with sdk_client(rpc_url(rpc)) as node:
        found = guarded(lambda: node.models.dataset_info(dataset_id))
    lines = [f"{found['dataset']}  terms: {found['terms'] or '(none given)'}"]
    lines += [f"  owner {o['address']}  {o['bps'] / 100:g}%" for o in found["owners"]]
    lines.append(f"  registered by {found['registrant']}")
    emit(found, as_json, "\n".join(lines))


@dataset_app.command("list")
def list_cmd(rpc: str | None = RpcOption, as_json: bool = JsonOption) -> None:
    """Every registered dataset, oldest first."""
    with sdk_client(rpc_url(rpc)) as node:
        found = guarded(node.models.datasets)
    lines = [f"{d['dataset']}  by {d['registrant']}  height {d['height']}" for d in found]
    emit(found, as_json, "\n".join(lines) if found else "no datasets are registered")
