"""`aichain-node artifact …`: add, get, list and look after the node's artifacts.

Bytes move over the node's HTTP endpoints (streamed, with a progress bar on stderr); the
rest is the `artifact_` RPC namespace. A download is checked end to end on this side too:
the file's SHA-256 must equal its id (each file of a directory: its listed digest), else
nothing is left at the destination. A private (encrypted) artifact's plaintext is for its
owners and licensees only (`cli.artifact_private`), and is written readable by this user only.
"""

from __future__ import annotations

import base64
import json
import os
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import typer

from aichain_node import Client
from aichain_node.content_keys import save_content_key
from aichain_node.transfer import Progress, private_dir
from cli import artifact_download as http_io
from cli import artifact_private as private
from cli.artifact_private import NodeKeyOption
from cli.common import (
    AdminTokenFileOption,
    JsonOption,
    KeystoreOption,
    PasswordFileOption,
    QuietOption,
    RpcOption,
    admin_header,
    client,
    content_key_dir,
    emit,
    fail,
    load_key,
    resolve_address,
    rpc_guarded,
    rpc_url,
)
from cli.common import progress_bar as _progress
from core.artifact import format_id, parse_id
from core.artifact_listing import plaintext_listing
from core.errors import AichainError, ArtifactErased, ArtifactNotFound
from core.keys import address_hex
from core.sealing import new_content_key

artifact_app = typer.Typer(
    help="Add, get, list and look after content-addressed artifacts (models, datasets).", no_args_is_help=True
)
BLOCK = http_io.BLOCK
IdArgument = typer.Argument(..., help="Artifact id, sha256:<hex>")
T = TypeVar("T")


@artifact_app.command("add")
def add(
    path: Path = typer.Argument(..., help="A file, or a directory (one artifact of all its files)"),
    pin: bool = typer.Option(True, "--pin/--no-pin", help="Keep it through garbage collection"),
    encrypt: bool = typer.Option(
        False,
        "--encrypt",
        help="Store it encrypted under a new content key, made here and kept here and on the node (AES-256-GCM per "
        "chunk); the id stays the plaintext's sha256",
    ),
    publisher: str | None = typer.Option(
        None,
        "--publisher",
        help="With --encrypt: the account (key name or address) that will publish it as a model version; the node "
        "releases its key and serves its plaintext for that account's versions only",
    ),
    rpc: str | None = RpcOption,
    admin_token_file: Path | None = AdminTokenFileOption,
    keystore: Path | None = KeystoreOption,
    quiet: bool = QuietOption,
    as_json: bool = JsonOption,
) -> None:
    """Store a file or directory in the node's artifact store; prints its id (sha256:… of the file)."""
    if not path.exists():
        fail(f"{path} does not exist")
    if publisher is not None and not encrypt:
        fail("--publisher names who publishes an encrypted artifact: add --encrypt")
    connection = http_io.open_connection(rpc)
    query = [] if pin else ["pin=false"]
    announced = admin_header(admin_token_file)  # an upload is an admin call
    kept: tuple[bytes, bytes] | None = None  # (id, content key) of an encrypted artifact, kept once it is stored
    if encrypt:  # the chunks' encryption binds the id, so it is computed here first (one read of the file)
        digest = plaintext_listing(path)[0]
        key = new_content_key()  # kept here too (once stored): this machine can always decrypt what it added
        announced["X-Artifact-Id"] = format_id(digest)
        announced["X-Content-Key"] = base64.b64encode(key).decode()
        kept = (digest, key)
        if publisher is not None:
            announced["X-Content-Publisher"] = address_hex(_guarded(lambda: resolve_address(publisher, keystore)))
        query.append("encrypt=true")
    target = "/artifacts" + ("?" + "&".join(query) if query else "")
    try:
        if path.is_dir():
            total = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            with _progress(total, f"adding {path.name}/", quiet) as advance:
                connection.putrequest("PUT", target)
                connection.putheader("Content-Type", "application/x-tar")
                connection.putheader("Transfer-Encoding", "chunked")
                for name, value in announced.items():
                    connection.putheader(name, value)
                connection.endheaders()
                for piece in _tar_stream(path, advance):
                    connection.send(b"%x\r\n%s\r\n" % (len(piece), piece))
                connection.send(b"0\r\n\r\n")
        else:
            size = path.stat().st_size
            with _progress(size, f"adding {path.name}", quiet) as advance, path.open("rb") as stream:
                connection.putrequest("PUT", target)
                connection.putheader("Content-Type", "application/octet-stream")
                connection.putheader("Content-Length", str(size))
                for name, value in announced.items():
                    connection.putheader(name, value)
                connection.endheaders()
                while block := stream.read(BLOCK):
                    connection.send(block)
                    advance(len(block))
    except OSError as exc:
        fail(f"adding {path}: the upload failed ({exc}); is the node running? (--rpc / AICHAIN_RPC)")
    answer = http_io.response_of(connection, f"adding {path}")
    if answer.status != 201:
        http_io.refuse(answer, f"adding {path}")
    summary = json.loads(answer.read())
    if kept is not None:
        save_content_key(content_key_dir(), *kept)
    emit(summary, as_json, summary["id"])


def _tar_stream(root: Path, advance: Progress) -> Iterator[bytes]:
    """The directory as an uncompressed tar, regular files sorted by path, produced while it is sent."""
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []

    def write() -> None:
        try:
            with os.fdopen(write_fd, "wb") as pipe, tarfile.open(fileobj=pipe, mode="w|", bufsize=BLOCK) as archive:
                for file in sorted((f for f in root.rglob("*") if f.is_file()), key=lambda f: _relative(f, root)):
                    if file.is_symlink():
                        raise OSError(f"{file} is a symbolic link: copy the file it points to into the directory")
                    info = archive.gettarinfo(str(file), arcname=file.relative_to(root).as_posix())
                    with file.open("rb") as stream:
                        archive.addfile(info, _Counted(stream, advance))
        except BaseException as exc:  # reported by the reading side
            failure.append(exc)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    with os.fdopen(read_fd, "rb") as pipe:
        while piece := pipe.read(BLOCK):
            yield piece
    writer.join()
    if failure:
        raise OSError(str(failure[0]))


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


class _Counted:
    def __init__(self, stream: BinaryIO, advance: Progress) -> None:
        self._stream, self._advance = stream, advance

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        self._advance(len(data))
        return data


@artifact_app.command("get")
def get(
    artifact: str = IdArgument,
    output: Path | None = typer.Option(None, "-o", "--output", help="Where to write it [./<id hex>]"),
    force: bool = typer.Option(False, "--force", help="Fetch it from peers even if it was erased on the node"),
    sender: str | None = typer.Option(
        None,
        "--from",
        help="A private artifact: sign the requests with this key (an owner or licensee of a version naming it)",
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        help="With --from: the MODEL@VERSION whose licence or ownership the requests rely on [the first naming the "
        "artifact you may read]",
    ),
    node_key: str | None = NodeKeyOption,
    rpc: str | None = RpcOption,
    admin_token_file: Path | None = AdminTokenFileOption,
    keystore: Path | None = KeystoreOption,
    password_file: Path | None = PasswordFileOption,
    quiet: bool = QuietOption,
    as_json: bool = JsonOption,
) -> None:
    """Download an artifact, checking its SHA-256 (each file's, for a directory). If the node does not
    store it, the node first fetches it from its peers (chunks from all of them, each checked).

    A private artifact's plaintext: decrypted here with the content key this machine kept when it
    added or published it; or, --from an owner or licensee, served by the node that keeps the key
    to requests signed with that key."""
    digest = _parse(artifact)
    node = client(rpc, admin_token_file)  # the node may have to fetch it from peers: an admin call
    artifact_id = format_id(digest)

    def stored_info() -> dict[str, Any] | None:
        """The node's manifest summary, or None if it must fetch the artifact from its peers first."""
        try:
            summary: dict[str, Any] = node.rpc("artifact_info", artifact_id)
        except ArtifactNotFound:
            return None
        except ArtifactErased as exc:
            if not force:
                fail(f"{exc.message}; to get it again from peers, add --force")
            return None
        return summary

    info = rpc_guarded(stored_info)
    if info is None:
        _fetch_to_node(node, artifact_id, force, quiet)
        info = rpc_guarded(node.rpc, "artifact_info", artifact_id)
    dest = output or Path(digest.hex())
    sign: private.Signer | None = None
    if info.get("encrypted"):
        key = private.kept_key(digest) if sender is None else None  # --from: as that account, through the node
        if key is not None:
            dest.parent.mkdir(parents=True, exist_ok=True)
            with _progress(info["size"], f"decrypting {dest.name}", quiet) as advance:
                _guarded(lambda: private.decrypt_here(rpc_url(rpc), info, digest, key, dest, advance))
            emit(
                {"id": info["id"], "path": str(dest), "size": info["size"], "decrypted_here": True}, as_json, str(dest)
            )
            return
        if sender is not None:
            signing_key = load_key(sender, keystore, password_file)
            version = _guarded(lambda: private.choose_version(rpc_url(rpc), digest, signing_key, model))
            status = rpc_guarded(node.rpc, "node_status")
            audience = _guarded(lambda: private.audience(status, node_key))
            sign = private.signer(signing_key, int(status["chain_id"]), audience, digest, version)
    if info["kind"] == "directory":
        if info.get("encrypted"):
            private_dir(dest)
        else:
            dest.mkdir(parents=True, exist_ok=True)
        with _progress(info["size"], f"getting {dest.name}/", quiet) as advance:
            for entry in info["files"]:
                path = f"/artifacts/{info['id']}/files/{entry['path']}"
                http_io.download(
                    rpc,
                    path,
                    dest / entry["path"],
                    bytes.fromhex(entry["sha256"]),
                    advance,
                    sign,
                    bool(info.get("encrypted")),
                )
    else:
        with _progress(info["size"], f"getting {dest.name}", quiet) as advance:
            http_io.download(rpc, f"/artifacts/{info['id']}", dest, digest, advance, sign, bool(info.get("encrypted")))
    emit({"id": info["id"], "path": str(dest), "size": info["size"]}, as_json, str(dest))


def _guarded(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except (AichainError, ValueError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{exc.filename or 'a file'}: {exc.strerror or exc}")


def _fetch_to_node(node: Client, artifact: str, force: bool, quiet: bool) -> None:
    """Have the node fetch the artifact from its peers, showing the progress."""
    status = rpc_guarded(node.rpc, "artifact_fetch", artifact, True, force, 0)
    with _progress(None, "fetching from peers", quiet) as advance:
        done = 0
        while status["state"] not in ("done", "failed"):
            time.sleep(0.2)
            status = rpc_guarded(node.rpc, "artifact_fetchStatus", artifact)
            advance(status["bytes_fetched"] - done)
            done = status["bytes_fetched"]
    if status["state"] == "failed":
        fail(f"the node could not fetch {artifact} from its peers: {status['error']}")


@artifact_app.command("ls")
def ls(rpc: str | None = RpcOption, as_json: bool = JsonOption) -> None:
    """The artifacts stored on the node."""
    artifacts = rpc_guarded(client(rpc).rpc, "artifact_list")
    lines = [f"{a['id']}  {a['size']:>14,}  {a['kind']:<9} {'pinned' if a['pinned'] else 'cached'}" for a in artifacts]
    emit(artifacts, as_json, "\n".join(lines) if lines else "no artifacts")


@artifact_app.command("info")
def info(artifact: str = IdArgument, rpc: str | None = RpcOption, as_json: bool = JsonOption) -> None:
    """An artifact's manifest: size, chunks, Merkle root, files."""
    details = rpc_guarded(client(rpc).rpc, "artifact_info", _canonical(artifact))
    human = "\n".join(f"{k}: {v}" for k, v in details.items() if k not in ("chunk_ids", "files"))
    for entry in details["files"]:
        human += f"\n  {entry['path']}  {entry['size']:,}  sha256:{entry['sha256']}"
    emit(details, as_json, human)


@artifact_app.command("pin")
def pin(
    artifact: str = IdArgument,
    rpc: str | None = RpcOption,
    admin_token_file: Path | None = AdminTokenFileOption,
    as_json: bool = JsonOption,
) -> None:
    """Keep an artifact through garbage collection."""
    rpc_guarded(client(rpc, admin_token_file).rpc, "artifact_pin", _canonical(artifact))
    emit({"pinned": True}, as_json, "pinned")


@artifact_app.command("unpin")
def unpin(
    artifact: str = IdArgument,
    rpc: str | None = RpcOption,
    admin_token_file: Path | None = AdminTokenFileOption,
    as_json: bool = JsonOption,
) -> None:
    """Let garbage collection remove an artifact."""
    rpc_guarded(client(rpc, admin_token_file).rpc, "artifact_unpin", _canonical(artifact))
    emit({"pinned": False}, as_json, "unpinned")


@artifact_app.command("rm")
def rm(
    artifact: str = IdArgument,
    erase: bool = typer.Option(False, "--erase", help="Also keep a tombstone: never fetch it again unless asked"),
    rpc: str | None = RpcOption,
    admin_token_file: Path | None = AdminTokenFileOption,
    as_json: bool = JsonOption,
) -> None:
    """Delete an artifact's bytes from the node now."""
    freed = rpc_guarded(client(rpc, admin_token_file).rpc, "artifact_remove", _canonical(artifact), erase)
    emit(freed, as_json, f"removed ({freed['bytes_freed']:,} bytes freed){' and erased' if erase else ''}")


@artifact_app.command("verify")
def verify(
    artifact: str = IdArgument,
    repair: bool = typer.Option(False, "--repair", help="Fetch damaged chunks again from peers"),
    rpc: str | None = RpcOption,
    admin_token_file: Path | None = AdminTokenFileOption,
    as_json: bool = JsonOption,
) -> None:
    """Re-read and re-hash an artifact on the node; exit code 1 if anything is (still) damaged."""
    node = client(rpc, admin_token_file)
    report = rpc_guarded(node.rpc, "artifact_verify", _canonical(artifact), repair)
    if report.get("repaired"):
        report = {**rpc_guarded(node.rpc, "artifact_verify", report["id"]), "repaired": report["repaired"]}
    human = (
        f"{report['id']}: ok ({report['chunks']} chunks)"
        if report["ok"]
        else f"{report['id']}: DAMAGED: chunks {report['bad_chunks']} of {report['chunks']}, "
        f"digest {'ok' if report['digest_ok'] else 'wrong'}"
    )
    if report.get("repaired"):
        human += f"; repaired chunks {report['repaired']} from peers"
    emit(report, as_json, human)
    if not report["ok"]:
        raise typer.Exit(1)


@artifact_app.command("gc")
def gc(
    rpc: str | None = RpcOption, admin_token_file: Path | None = AdminTokenFileOption, as_json: bool = JsonOption
) -> None:
    """Remove unpinned artifacts and chunk files nothing lists."""
    report = rpc_guarded(client(rpc, admin_token_file).rpc, "artifact_gc")
    emit(
        report,
        as_json,
        f"removed {report['artifacts_removed']} artifacts, {report['chunks_removed']} chunks, "
        f"{report['bytes_freed']:,} bytes",
    )


def _parse(artifact: str) -> bytes:
    try:
        return parse_id(artifact)
    except ValueError as exc:
        fail(str(exc))


def _canonical(artifact: str) -> str:
    """The id as the node takes it (`sha256:<hex>`), from any form a user may type."""
    return format_id(_parse(artifact))
