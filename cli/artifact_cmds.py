"""`aichain-node artifact …`: add, get, list and look after the node's artifacts.

Bytes move over the node's HTTP endpoints (streamed, with a progress bar on stderr); the
rest is the `artifact_` RPC namespace. A download is checked end to end on this side too:
the file's SHA-256 must equal its id (each file of a directory: its listed digest), else
nothing is left at the destination.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

import typer

from cli.common import JsonOption, QuietOption, RpcOption, client, emit, fail, rpc_url, run_guarded
from cli.common import progress_bar as _progress
from core.artifact import format_id, parse_id
from core.errors import ArtifactErased, ArtifactNotFound
from node.rpc.client import NodeUnreachable, RpcCallError
from storage.artifact_io import plaintext_listing

artifact_app = typer.Typer(help="Add, get, list and look after content-addressed artifacts (models, datasets).",
                           no_args_is_help=True)  # fmt: skip
BLOCK = 1024 * 1024
IdArgument = typer.Argument(..., help="Artifact id, sha256:<hex>")


def _connection(rpc: str | None) -> http.client.HTTPConnection:
    url = urlparse(rpc_url(rpc))
    if url.scheme == "https":
        return http.client.HTTPSConnection(url.hostname or "127.0.0.1", url.port, timeout=120)
    return http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=120)


def _answer(connection: http.client.HTTPConnection, what: str) -> http.client.HTTPResponse:
    try:
        return connection.getresponse()
    except (OSError, http.client.HTTPException) as exc:
        fail(f"{what}: the node did not answer ({exc}); is it running? (--rpc / AICHAIN_RPC)")


def _refused(answer: http.client.HTTPResponse, what: str) -> None:
    body = answer.read()
    try:
        message = json.loads(body).get("error", body.decode(errors="replace"))
    except ValueError:
        message = body.decode(errors="replace")
    fail(f"{what}: HTTP {answer.status}: {message.strip()}")


@artifact_app.command("add")
def add(
    path: Path = typer.Argument(..., help="A file, or a directory (one artifact of all its files)"),
    pin: bool = typer.Option(True, "--pin/--no-pin", help="Keep it through garbage collection"),
    encrypt: bool = typer.Option(False, "--encrypt", help="Store it encrypted under a new content key kept by the "
                                 "node (AES-256-GCM per chunk); the id stays the plaintext's sha256"),
    rpc: str | None = RpcOption,
    quiet: bool = QuietOption,
    as_json: bool = JsonOption,
) -> None:
    """Store a file or directory in the node's artifact store; prints its id (sha256:… of the file)."""
    if not path.exists():
        fail(f"{path} does not exist")
    connection = _connection(rpc)
    query = [] if pin else ["pin=false"]
    announced: dict[str, str] = {}
    if encrypt:  # the chunks' encryption binds the id, so it is computed here first (one read of the file)
        digest = plaintext_listing(path)[0]
        announced["X-Artifact-Id"] = format_id(digest)
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
    answer = _answer(connection, f"adding {path}")
    if answer.status != 201:
        _refused(answer, f"adding {path}")
    summary = json.loads(answer.read())
    emit(summary, as_json, summary["id"])


def _tar_stream(root: Path, advance: Any) -> Iterator[bytes]:
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
    def __init__(self, stream: Any, advance: Any) -> None:
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
    rpc: str | None = RpcOption,
    quiet: bool = QuietOption,
    as_json: bool = JsonOption,
) -> None:
    """Download an artifact, checking its SHA-256 (each file's, for a directory). If the node does not
    store it, the node first fetches it from its peers (chunks from all of them, each checked)."""
    digest = _parse(artifact)
    node = client(rpc)
    artifact_id = format_id(digest)
    try:
        info = node.call("artifact_info", artifact_id)
    except RpcCallError as exc:
        if exc.code == ArtifactErased.rpc_code and not force:
            fail(f"{exc.message}; to get it again from peers, add --force")
        if exc.code not in (ArtifactNotFound.rpc_code, ArtifactErased.rpc_code):
            fail(f"the node refused: {exc.message} (code {exc.code})")
        _fetch_to_node(node, artifact_id, force, quiet)
        info = run_guarded(node.call, "artifact_info", artifact_id)
    except NodeUnreachable as exc:
        fail(str(exc))
    dest = output or Path(digest.hex())
    if info["kind"] == "directory":
        dest.mkdir(parents=True, exist_ok=True)
        with _progress(info["size"], f"getting {dest.name}/", quiet) as advance:
            for entry in info["files"]:
                path = f"/artifacts/{info['id']}/files/{quote(entry['path'])}"
                _download(rpc, path, dest / entry["path"], bytes.fromhex(entry["sha256"]), advance)
    else:
        with _progress(info["size"], f"getting {dest.name}", quiet) as advance:
            _download(rpc, f"/artifacts/{info['id']}", dest, digest, advance)
    emit({"id": info["id"], "path": str(dest), "size": info["size"]}, as_json, str(dest))


def _fetch_to_node(node: Any, artifact: str, force: bool, quiet: bool) -> None:
    """Have the node fetch the artifact from its peers, showing the progress."""
    status = run_guarded(node.call, "artifact_fetch", artifact, True, force, 0)
    with _progress(None, "fetching from peers", quiet) as advance:
        done = 0
        while status["state"] not in ("done", "failed"):
            time.sleep(0.2)
            status = run_guarded(node.call, "artifact_fetchStatus", artifact)
            advance(status["bytes_fetched"] - done)
            done = status["bytes_fetched"]
    if status["state"] == "failed":
        fail(f"the node could not fetch {artifact} from its peers: {status['error']}")


def _download(rpc: str | None, path: str, dest: Path, digest: bytes, advance: Any) -> None:
    """Stream `path` to `dest` via `<dest>.part`, resuming a part left by an interrupted download."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    hasher = hashlib.sha256()
    have = 0
    if part.exists():
        with part.open("rb") as stream:
            while block := stream.read(BLOCK):
                hasher.update(block)
                have += len(block)
        advance(have)
    connection = _connection(rpc)
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        connection.request("GET", path, headers=headers)
    except OSError as exc:
        fail(f"getting {dest}: {exc}; is the node running? (--rpc / AICHAIN_RPC)")
    answer = _answer(connection, f"getting {dest}")
    if answer.status == 416 and have:  # the part is already whole
        answer.read()
    elif answer.status not in (200, 206):
        _refused(answer, f"getting {dest}")
    else:
        if answer.status == 200 and have:  # the node sent everything: start over
            hasher, have = hashlib.sha256(), 0
        with part.open("ab" if have else "wb") as out:
            try:
                while block := answer.read(BLOCK):
                    out.write(block)
                    hasher.update(block)
                    advance(len(block))
            except (OSError, http.client.HTTPException) as exc:
                fail(f"getting {dest}: the transfer broke off ({exc}); run the same command again to resume")
            out.flush()
            os.fsync(out.fileno())
    if hasher.digest() != digest:
        part.unlink(missing_ok=True)
        fail(f"getting {dest}: the bytes received hash to sha256:{hasher.hexdigest()}, not sha256:{digest.hex()}; "
             "nothing was kept")  # fmt: skip
    os.replace(part, dest)


@artifact_app.command("ls")
def ls(rpc: str | None = RpcOption, as_json: bool = JsonOption) -> None:
    """The artifacts stored on the node."""
    artifacts = run_guarded(client(rpc).call, "artifact_list")
    lines = [f"{a['id']}  {a['size']:>14,}  {a['kind']:<9} {'pinned' if a['pinned'] else 'cached'}" for a in artifacts]
    emit(artifacts, as_json, "\n".join(lines) if lines else "no artifacts")


@artifact_app.command("info")
def info(artifact: str = IdArgument, rpc: str | None = RpcOption, as_json: bool = JsonOption) -> None:
    """An artifact's manifest: size, chunks, Merkle root, files."""
    details = run_guarded(client(rpc).call, "artifact_info", _canonical(artifact))
    human = "\n".join(f"{k}: {v}" for k, v in details.items() if k not in ("chunk_ids", "files"))
    for entry in details["files"]:
        human += f"\n  {entry['path']}  {entry['size']:,}  sha256:{entry['sha256']}"
    emit(details, as_json, human)


@artifact_app.command("pin")
def pin(artifact: str = IdArgument, rpc: str | None = RpcOption, as_json: bool = JsonOption) -> None:
    """Keep an artifact through garbage collection."""
    run_guarded(client(rpc).call, "artifact_pin", _canonical(artifact))
    emit({"pinned": True}, as_json, "pinned")


@artifact_app.command("unpin")
def unpin(artifact: str = IdArgument, rpc: str | None = RpcOption, as_json: bool = JsonOption) -> None:
    """Let garbage collection remove an artifact."""
    run_guarded(client(rpc).call, "artifact_unpin", _canonical(artifact))
    emit({"pinned": False}, as_json, "unpinned")


@artifact_app.command("rm")
def rm(
    artifact: str = IdArgument,
    erase: bool = typer.Option(False, "--erase", help="Also keep a tombstone: never fetch it again unless asked"),
    rpc: str | None = RpcOption,
    as_json: bool = JsonOption,
) -> None:
    """Delete an artifact's bytes from the node now."""
    freed = run_guarded(client(rpc).call, "artifact_remove", _canonical(artifact), erase)
    emit(freed, as_json, f"removed ({freed['bytes_freed']:,} bytes freed){' and erased' if erase else ''}")


@artifact_app.command("verify")
def verify(
    artifact: str = IdArgument,
    repair: bool = typer.Option(False, "--repair", help="Fetch damaged chunks again from peers"),
    rpc: str | None = RpcOption,
    as_json: bool = JsonOption,
) -> None:
    """Re-read and re-hash an artifact on the node; exit code 1 if anything is (still) damaged."""
    node = client(rpc)
    report = run_guarded(node.call, "artifact_verify", _canonical(artifact), repair)
    if report.get("repaired"):
        report = {**run_guarded(node.call, "artifact_verify", report["id"]), "repaired": report["repaired"]}
    human = (f"{report['id']}: ok ({report['chunks']} chunks)" if report["ok"] else
             f"{report['id']}: DAMAGED: chunks {report['bad_chunks']} of {report['chunks']}, "
             f"digest {'ok' if report['digest_ok'] else 'wrong'}")  # fmt: skip
    if report.get("repaired"):
        human += f"; repaired chunks {report['repaired']} from peers"
    emit(report, as_json, human)
    if not report["ok"]:
        raise typer.Exit(1)


@artifact_app.command("gc")
def gc(rpc: str | None = RpcOption, as_json: bool = JsonOption) -> None:
    """Remove unpinned artifacts and chunk files nothing lists."""
    report = run_guarded(client(rpc).call, "artifact_gc")
    emit(report, as_json, f"removed {report['artifacts_removed']} artifacts, {report['chunks_removed']} chunks, "
                          f"{report['bytes_freed']:,} bytes")  # fmt: skip


def _parse(artifact: str) -> bytes:
    try:
        return parse_id(artifact)
    except ValueError as exc:
        fail(str(exc))


def _canonical(artifact: str) -> str:
    """The id as the node takes it (`sha256:<hex>`), from any form a user may type."""
    return format_id(_parse(artifact))
