"""`aichain-node model …`: publish, look up, pull, verify, run and audit AI models.

Every command talks to a node (`--rpc`); those that sign or decrypt take `--from KEY`.
What is printed is one line per fact, or `--json`. Errors are one line saying what was wrong
and what to do, with exit code 1.

    aichain-node model publish net.onnx --name net --private --offer price=10,duration=30d --from alice
    aichain-node licence buy net --from bob
    aichain-node model pull net --from bob
    aichain-node model run net --input x.npy --record --from bob
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer

from aichain_node.cards import ModelCard
from aichain_node.terms import ModelRef, Offer, parse_owners
from cli.artifact_private import NodeKeyOption
from cli.common import (
    AdminTokenFileOption,
    JsonOption,
    KeystoreOption,
    PasswordFileOption,
    QuietOption,
    RpcOption,
    emit,
    fail,
    resolve_address,
    rpc_url,
    sdk_client,
    sent_to,
)
from cli.model_common import (
    FromOption,
    ModelArgument,
    card_lines,
    connect,
    guarded,
    offer_line,
    owner_spec,
    phases,
)
from cli.model_run_cmds import receipts, run, verify

model_app = typer.Typer(help="Publish, inspect, pull, verify, run and audit AI models on chain.", no_args_is_help=True)


@model_app.command("publish")
def publish(
    path: Path = typer.Argument(..., help="The model: an .onnx file, or a directory (ONNX with external data)"),
    name: str = typer.Option(..., "--name", help="Model name; if it is registered, this publishes its next version"),
    private: bool = typer.Option(False, "--private", help="Store it encrypted; licensees get its key on chain"),
    parent: list[str] = typer.Option([], "--parent", help="MODEL@VERSION it was derived from (repeatable)"),
    dataset: list[str] = typer.Option([], "--dataset", help="sha256:… of a dataset it was trained on (repeatable)"),
    owner: list[str] = typer.Option(
        [],
        "--owner",
        help="OWNER:SHARE of a new model, the owner an address or a key name, e.g. carol:60% (repeatable; default: "
        "you, 100%)",
    ),
    offer: str | None = typer.Option(
        None,
        "--offer",
        help="Offer licences at once: price=10,duration=30d,per-use=0.1,royalty-upstream=10%,max=100,allow=0x…+0x…",
    ),
    release: bool = typer.Option(
        True,
        "--release/--no-release",
        help="Name the node as the releaser of a private model's key, so buyers get it automatically",
    ),
    model_format: str = typer.Option("onnx", "--format", help="Format recorded on chain for a new model"),
    description: str = typer.Option("", "--description", help="Card of a new model: what it does, in a few lines"),
    task: str = typer.Option("", "--task", help="Card: its task, e.g. image-classification, text-generation"),
    tag: list[str] = typer.Option([], "--tag", help="Card: a tag to find it by (repeatable)"),
    licence_text: str = typer.Option(
        "", "--licence", help="Card: the licence its use falls under, an SPDX id (Apache-2.0) or a short text"
    ),
    sender: str = typer.Option(..., "--from", help="Publisher key (an owner of the model)"),
    rpc: str | None = RpcOption,
    keystore: Path | None = KeystoreOption,
    password_file: Path | None = PasswordFileOption,
    admin_token_file: Path | None = AdminTokenFileOption,
    quiet: bool = QuietOption,
    as_json: bool = JsonOption,
) -> None:
    """Store a model on the node and register it on chain as a new model or its next version.

    With --private the bytes are encrypted under a new content key, kept on this machine and on
    the node; when a licence is bought, the node seals that key to the buyer (see docs/models.md).
    A new model's card (--description, --task, --tag, --licence, and the inputs and outputs read
    from the ONNX file) is recorded with it, for buyers to read before they pay."""
    if not path.exists():
        fail(f"{path} does not exist: give an .onnx file or a directory holding one")
    terms = guarded(lambda: Offer.parse(offer)) if offer is not None else None
    wrote_card = bool(description or task or tag or licence_text)
    card = ModelCard(description.strip(), task.strip(), tuple(tag), licence_text.strip()) if wrote_card else None
    owners = guarded(lambda: parse_owners([owner_spec(o, keystore) for o in owner])) if owner else None
    size = path.stat().st_size if path.is_file() else sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    # Storing the bytes on the node is an upload: an admin call when the node is on another machine.
    with (
        connect(rpc, sender, keystore, password_file, admin_token_file=admin_token_file) as node,
        phases(quiet) as start,
    ):
        advance = start(f"storing {path.name}", size)
        result = guarded(
            lambda: node.models.publish(
                path,
                name,
                private=private,
                parents=parent,
                datasets=dataset,
                owners=owners,
                offer=terms,
                format=model_format,
                release=release,
                progress=advance,
                card=card,
            )
        )
        where = sent_to(node)
    lines = [f"published {result.model}@{result.version}  {result.artifact}" + ("  (private)" if private else "")]
    if result.offer is not None:
        ref = f"{result.model}@{result.version}"
        lines.append(f"offer {result.offer}: licences on sale (aichain-node licence buy {ref})")
    if result.releaser:
        lines.append(f"content keys released to buyers by the node's account {result.releaser}")
    elif private:
        lines.append("no releaser named: post each buyer's envelope yourself (keys.post_envelope)")
    emit(result.to_json(), as_json, "\n".join([*lines, where]))


@model_app.command("info")
def info(
    model: str = typer.Argument(..., help="Model name"),
    rpc: str | None = RpcOption,
    as_json: bool = JsonOption,
) -> None:
    """A model's owners, versions and licence offers."""
    with sdk_client(rpc_url(rpc)) as node:
        details = guarded(lambda: node.models.info(model))
        details["version_list"] = guarded(lambda: node.models.versions(model))
        details["offers"] = guarded(lambda: node.models.offers(model))
        details["releaser"] = guarded(lambda: node.models.releaser(model))
    lines = [f"{model}  ({details['format']}, {details['versions']} version(s))"]
    lines += card_lines(details["card"])
    lines += [f"  owner {o['address']}  {o['bps'] / 100:g}%" for o in details["owners"]]
    if details["releaser"]:
        lines.append(f"  key releaser {details['releaser']}")
    for version in details["version_list"]:
        lines.append(f"  {model}@{version['version']}  {version['artifact']}  height {version['height']}")
    lines += [f"  {offer_line(offer)}" for offer in details["offers"]]
    emit(details, as_json, "\n".join(lines))


@model_app.command("search")
def search(
    words: list[str] = typer.Argument(None, help="Words its name or card holds (all of them; any case)"),
    task: str = typer.Option("", "--task", help="Only models of this task"),
    tag: str = typer.Option("", "--tag", help="Only models with this tag"),
    owner: str | None = typer.Option(None, "--owner", help="Only models this address or key name owns a share of"),
    keystore: Path | None = KeystoreOption,
    rpc: str | None = RpcOption,
    as_json: bool = JsonOption,
) -> None:
    """Find models by their name and card: words, task, tag, owner."""
    who = guarded(lambda: resolve_address(owner, keystore)) if owner else None
    with sdk_client(rpc_url(rpc)) as node:
        found = guarded(lambda: node.models.search(words or [], task=task, tag=tag, owner=who))
    lines = []
    for info in found:
        card = info["card"] or {}
        about = ", ".join(x for x in [card.get("task", ""), " ".join(f"#{t}" for t in card.get("tags", []))] if x)
        lines.append(f"{info['model']}  ({info['versions']} version(s){'; ' + about if about else ''})")
        if card.get("description"):
            first = card["description"].splitlines()[0]
            lines.append(f"  {first[:100]}{'…' if len(first) > 100 else ''}")
    emit(found, as_json, "\n".join(lines) if found else "no model matches")


@model_app.command("versions")
def versions(
    model: str = typer.Argument(..., help="Model name"), rpc: str | None = RpcOption, as_json: bool = JsonOption
) -> None:
    """Every version of a model: artifact, parents, datasets, publisher, height."""
    with sdk_client(rpc_url(rpc)) as node:
        found = guarded(lambda: node.models.versions(model))
    lines = []
    for v in found:
        extra = "".join(
            [
                f"  from {', '.join(v['parents'])}" if v["parents"] else "",
                f"  trained on {', '.join(v['datasets'])}" if v["datasets"] else "",
            ]
        )
        lines.append(f"{model}@{v['version']}  {v['artifact']}  by {v['publisher']} at height {v['height']}{extra}")
    emit(found, as_json, "\n".join(lines))


@model_app.command("lineage")
def lineage(
    model: str = typer.Argument(..., help="Model name"),
    dot: bool = typer.Option(False, "--dot", help="Print the graph in Graphviz DOT"),
    image: Path | None = typer.Option(
        None, "--image", "-o", help="Draw it to an image (.svg, .png, .pdf; needs Graphviz's `dot`)"
    ),
    rpc: str | None = RpcOption,
    as_json: bool = JsonOption,
) -> None:
    """The provenance DAG: versions, parents (across models), datasets, owners, licences, receipts."""
    from aichain_node.provenance import render_image, to_dot, to_text

    with sdk_client(rpc_url(rpc)) as node:
        graph = guarded(lambda: node.models.lineage(model))
    if image is not None:
        guarded(lambda: render_image(to_dot(graph), image))
        if not as_json:
            typer.echo(f"drew the lineage of {model} to {image}", err=True)
    if dot:
        typer.echo(to_dot(graph), nl=False)
    elif image is None or as_json:  # with an image, the text is not printed too
        emit(graph, as_json, to_text(graph))


@model_app.command("pull")
def pull(
    model: str = ModelArgument,
    output: Path | None = typer.Option(None, "-o", "--output", help="Where to put it [~/.aichain/models/NAME/VERSION]"),
    refresh: bool = typer.Option(False, "--refresh", help="Download it again even if a verified copy is here"),
    sender: str | None = FromOption,
    node_key: str | None = NodeKeyOption,
    rpc: str | None = RpcOption,
    keystore: Path | None = KeystoreOption,
    password_file: Path | None = PasswordFileOption,
    admin_token_file: Path | None = AdminTokenFileOption,
    quiet: bool = QuietOption,
    as_json: bool = JsonOption,
) -> None:
    """Get a model version from the network, verified against its sha256 on chain (and decrypted with
    your envelope, if it is private) before it is put in place."""
    ref = guarded(lambda: ModelRef.parse(model))
    # The node fetching the bytes from its peers is an admin call when the node is on another machine.
    with connect(rpc, sender, keystore, password_file, node_key, admin_token_file) as node, phases(quiet) as start:
        fetched = start("fetching from peers", None)
        reading: list[Callable[[int], None]] = []

        def advance(n: int) -> None:
            if not reading:
                reading.append(start("checking" if sender is None else "decrypting and checking", None))
            reading[0](n)

        pulled = guarded(
            lambda: node.models.pull(ref, output, progress=advance, fetch_progress=fetched, refresh=refresh)
        )
    if pulled.replaced:
        typer.secho(f"warning: {pulled.replaced}", fg=typer.colors.YELLOW, err=True)
    how = (
        "already here, verified"
        if pulled.cached
        else "verified against the chain" + (", decrypted" if pulled.encrypted else "")
    )
    emit(pulled.to_json(), as_json, f"{pulled.path}  ({pulled.model}@{pulled.version} {pulled.artifact}; {how})")


@model_app.command("release")
def release(
    model: str = ModelArgument,
    to: list[str] = typer.Option(
        [], "--to", help="Licensee: address or key name (repeatable) [every buyer still waiting]"
    ),
    sender: str = typer.Option(..., "--from", help="An owner's key, on the machine the model was published from"),
    rpc: str | None = RpcOption,
    keystore: Path | None = KeystoreOption,
    password_file: Path | None = PasswordFileOption,
    as_json: bool = JsonOption,
) -> None:
    """Post buyers' content-key envelopes yourself, as an owner (when the node's release is off).

    Uses the content key kept on this machine when the version was published; serves each
    licensee with a valid licence and a published key that has no envelope yet."""
    who = guarded(lambda: [resolve_address(a, keystore) for a in to]) if to else None
    with connect(rpc, sender, keystore, password_file) as node:
        served = guarded(lambda: node.models.release(model, who))
        where = sent_to(node)
    lines = [f"released to {a}" for a in served] + [where] if served else ["nobody is waiting for a key"]
    emit(served, as_json, "\n".join(lines))


# Checking, running and auditing a version (cli/model_run_cmds.py).
model_app.command("verify")(verify)
model_app.command("run")(run)
model_app.command("receipts")(receipts)
