"""`aichain-node artifact get` of a private (encrypted) artifact: who may have its plaintext, and how.

- Without `--from`, on the machine that added or published it, the content key kept there
  (`~/.aichain/content-keys`, or `$AICHAIN_CONTENT_KEYS`) decrypts the public ciphertext here: the
  node is asked for nothing secret.
- With `--from KEY`, as that account, each request is signed by that account (`core.read_request`),
  for the node it is sent to alone (the node key `node_status` reports, or refused if that is not
  the one `--node-key` pins), and names the model version whose licence or ownership it relies
  on (`--model M@V`, or the first version on chain naming the artifact that the account may
  read); the node that keeps the content key checks it on chain and serves the plaintext.
- Without either, the node's refusal says what is needed.

The plaintext is written readable by this user only (0600 files, 0700 directories).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from aichain_node.content_keys import load_content_key
from aichain_node.terms import ModelRef
from cli.common import content_key_dir, sdk_client
from core import read_request
from core.artifact import format_id
from core.keys import PrivateKey, address_hex
from core.read_request import AUDIENCE_SIZE, sign_read
from core.system_addresses import MODELS

Signer = Callable[[str, str], dict[str, str]]  # (path, Range header) -> the headers of one signed GET
NodeKeyOption = typer.Option(
    None,
    "--node-key",
    envvar="AICHAIN_EXPECT_NODE_KEY",
    help="With --from: the node key (0x…) the node must report before a read of private plaintext is signed for "
    "it, as `aichain-node status` on that node shows it; without it, the key the node reports",
)


def kept_key(artifact: bytes) -> bytes | None:
    return load_content_key(content_key_dir(), artifact)


def decrypt_here(
    url: str, summary: dict[str, Any], artifact: bytes, key: bytes, dest: Path, advance: Callable[[int], None]
) -> Path:
    """The ciphertext from the node, decrypted with the content key kept here, checked, put at `dest`."""
    with sdk_client(url) as node:
        return node.download_stored(summary, artifact, dest, content_key=key, progress=advance)


def versions_naming(url: str, artifact: bytes) -> list[tuple[str, int]]:
    """Every (model, version) on chain whose artifact is `artifact`, oldest first."""
    wanted = "0x" + artifact.hex()
    with sdk_client(url) as node:
        events = node.models.events(MODELS, "VersionPublished")
    return [(e["fields"]["model"], int(e["fields"]["version"])) for e in events if e["fields"]["artifact"] == wanted]


def choose_version(url: str, artifact: bytes, key: PrivateKey, model: str | None) -> tuple[str, int]:
    """The version a signed read names: `model` (MODEL@VERSION) if given, else the first version naming the
    artifact that the account owns or holds a valid licence to. ValueError saying why there is none."""
    if model is not None:
        ref = ModelRef.parse(model)
        if ref.version is None:
            raise ValueError(f"--model names a version: {ref.name}@N")
        return ref.name, ref.version
    found = versions_naming(url, artifact)
    if not found:
        raise ValueError(
            f"no model version on chain names {format_id(artifact)}: its plaintext is for the owners and "
            "licensees of one, so the node serves it to no one (the machine that added it decrypts it "
            "with the key it kept)"
        )
    with sdk_client(url, key) as node:
        for name, version in found:
            if node.models.is_licensed(name, version):
                return name, version
    listed = ", ".join(f"{n}@{v}" for n, v in found)
    raise ValueError(
        f"{address_hex(key.address)} owns none of and holds no valid licence to the versions naming "
        f"{format_id(artifact)} ({listed}): buy one with `aichain-node licence buy {found[0][0]}@"
        f"{found[0][1]} --from KEY`"
    )


def parse_node_key(text: str) -> bytes:
    """A node key given as 0x-hex (`--node-key`); ValueError saying what one looks like."""
    try:
        return read_request.parse_node_key(text)
    except ValueError:
        raise ValueError(
            f"--node-key is a node's public key: 0x and {2 * AUDIENCE_SIZE} hex digits (`aichain-node "
            "status` on that node shows it)"
        ) from None


def audience(status: dict[str, Any], pinned: str | None) -> bytes:
    """The node key signed reads are for: the one the node reports (`node_status`), which must be `pinned`
    (0x-hex, `--node-key`) if given. ValueError saying why no read may be signed for this node."""
    reported = status.get("node_key")
    try:
        key = read_request.parse_node_key(reported)
    except ValueError:
        raise ValueError(
            f"the node reports no node key ({reported!r}), so no read can be signed for it alone: it is "
            "older than this client; upgrade it"
        ) from None
    if pinned is not None:
        expected = parse_node_key(pinned)
        if key != expected:
            raise ValueError(
                f"the node reports node key 0x{key.hex()}, not 0x{expected.hex()} (--node-key): it is "
                "another node, or one that lies about which it is; nothing was signed for it"
            )
    return key


def signer(key: PrivateKey, chain_id: int, node_key: bytes, artifact: bytes, version: tuple[str, int]) -> Signer:
    """Headers for each GET of the plaintext: a fresh signature (timestamp, nonce) for that path and Range, for
    the node whose key is `node_key` alone."""

    def headers(path: str, range_header: str) -> dict[str, str]:
        signed = sign_read(
            key,
            chain_id,
            artifact,
            version[0],
            version[1],
            "GET",
            path,
            range_header,
            audience=node_key,
            timestamp_ms=int(time.time() * 1000),
        )
        return {"Authorization": signed.header()}

    return headers


__all__ = [
    "NodeKeyOption",
    "Signer",
    "audience",
    "choose_version",
    "decrypt_here",
    "kept_key",
    "parse_node_key",
    "signer",
    "versions_naming",
]
