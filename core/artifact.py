"""Artifacts: ids and manifests.

An artifact is the bytes of a model or dataset, stored off chain and addressed by content.

- A **single-file** artifact's id is the SHA-256 of the file, `sha256:<hex>`: the digest
  `sha256sum` prints, so anyone can check a download without this software.
- A **directory** artifact (an ONNX file with external data, sharded weights, a tokenizer,
  a model card) lists its files, sorted by path, each with its size and its own SHA-256; its
  bytes are the files' bytes one after another in that order, and its id is the SHA-256 of
  the canonical encoding of the file list (`directory_id`).
- The bytes are cut into chunks of `chunk_size` (the last one shorter); a chunk is addressed
  by the SHA-256 of the bytes stored (ciphertext, for an encrypted artifact). The manifest
  lists the chunk ids and carries the Merkle root over them, so one chunk can be checked
  against the root alone (`core.hashing.merkle_proof`).
- An encrypted artifact keeps the id of its plaintext, so a licensee can check what it
  decrypted; its chunks are AES-256-GCM ciphertexts (`core.sealing`), 16 bytes longer each.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core import codec
from core.errors import DecodeError
from core.hashing import merkle_root, sha256

MANIFEST_TAG = 30
DIRECTORY_TAG = 31
MANIFEST_VERSION = 1
DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024
MIN_CHUNK_SIZE = 1024
MAX_CHUNK_SIZE = 8 * 1024 * 1024  # a chunk travels in one P2P frame (16 MiB)
MAX_CHUNKS = 1 << 20  # 4 TiB at the default chunk size
MAX_FILES = 10_000
MAX_PATH = 1024
GCM_TAG_SIZE = 16
ID_PREFIX = "sha256:"
MANIFEST_LIMITS = codec.Limits(
    max_bytes=64 * 1024 * 1024, max_bin_len=64, max_str_len=MAX_PATH, max_array_len=MAX_CHUNKS, max_depth=4
)

KIND_FILE = 0
KIND_DIRECTORY = 1


def format_id(digest: bytes) -> str:
    return ID_PREFIX + digest.hex()


def parse_id(text: str) -> bytes:
    """The 32-byte digest of `sha256:<64 hex>` (a bare 64-hex digest is accepted too)."""
    raw = text.strip().lower().removeprefix(ID_PREFIX)
    try:
        digest = bytes.fromhex(raw)
    except ValueError:
        digest = b""
    if len(digest) != 32:
        raise ValueError(f"{text!r} is not an artifact id: expected sha256:<64 hex digits>")
    return digest


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of a directory artifact: its path (relative, '/'-separated), size and SHA-256."""

    path: str
    size: int
    sha256: bytes

    def to_wire(self) -> list[codec.Value]:
        return [self.path, self.size, self.sha256]


def check_path(path: str) -> str:
    """A relative path inside the artifact: no absolute paths, no `..`, no empty parts."""
    parts = path.split("/")
    if not path or len(path) > MAX_PATH or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise DecodeError(f"file path {path!r} must be relative, '/'-separated, without '.' or '..' parts")
    if "\\" in path or "\x00" in path:
        raise DecodeError(f"file path {path!r} may not contain backslashes or NUL")
    return path


def directory_id(files: tuple[FileEntry, ...]) -> bytes:
    """The id of a directory artifact: SHA-256 of the canonical encoding of its sorted file list."""
    return sha256(codec.encode([DIRECTORY_TAG, [f.to_wire() for f in files]]))


def chunk_count(size: int, chunk_size: int) -> int:
    return -(-size // chunk_size)


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a node needs to fetch, check and reassemble an artifact."""

    id: bytes  # SHA-256 of the plaintext file, or `directory_id(files)`
    kind: int  # KIND_FILE or KIND_DIRECTORY
    size: int  # bytes of plaintext (a directory: all its files together)
    chunk_size: int  # plaintext bytes per chunk (the last chunk may be shorter)
    chunks: tuple[bytes, ...]  # SHA-256 of each chunk as stored
    files: tuple[FileEntry, ...] = ()  # a directory's files, sorted by path
    encrypted: bool = False
    merkle_root: bytes = field(init=False, repr=False, compare=False)  # over `chunks`, computed once

    def __post_init__(self) -> None:
        object.__setattr__(self, "merkle_root", merkle_root(list(self.chunks)))

    @property
    def artifact_id(self) -> str:
        return format_id(self.id)

    def stored_size(self, index: int) -> int:
        """Bytes of chunk `index` as stored (plaintext length, plus the GCM tag if encrypted)."""
        plain = min(self.chunk_size, self.size - index * self.chunk_size)
        return plain + (GCM_TAG_SIZE if self.encrypted else 0)

    def to_wire(self) -> list[codec.Value]:
        return [
            MANIFEST_TAG,
            MANIFEST_VERSION,
            self.id,
            self.kind,
            self.size,
            self.chunk_size,
            list(self.chunks),
            self.merkle_root,
            [f.to_wire() for f in self.files],
            self.encrypted,
        ]

    def encode(self) -> bytes:
        return codec.encode(self.to_wire())

    @property
    def hash(self) -> bytes:
        return sha256(self.encode())

    @classmethod
    def decode(cls, raw: bytes) -> Manifest:
        """Decode an untrusted manifest; raise `DecodeError` saying what is wrong."""
        items = codec.expect_list(codec.decode(raw, limits=MANIFEST_LIMITS), MANIFEST_TAG, 10, "manifest")
        if items[1] != MANIFEST_VERSION:
            raise DecodeError(f"manifest version {items[1]!r} is not supported (this node reads {MANIFEST_VERSION})")
        digest = codec.expect_bytes(items[2], "manifest id", 32)
        kind = codec.expect_uint(items[3], "manifest kind")
        size = codec.expect_uint(items[4], "manifest size")
        chunk_size = codec.expect_uint(items[5], "chunk size")
        if kind not in (KIND_FILE, KIND_DIRECTORY):
            raise DecodeError(f"manifest kind {kind} is unknown")
        if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
            raise DecodeError(f"chunk size {chunk_size} is outside {MIN_CHUNK_SIZE}..{MAX_CHUNK_SIZE}")
        if not isinstance(items[6], list):
            raise DecodeError("manifest chunks: expected an array")
        chunks = tuple(codec.expect_bytes(c, "chunk id", 32) for c in items[6])
        if len(chunks) != chunk_count(size, chunk_size):
            raise DecodeError(f"{len(chunks)} chunk ids for {size} bytes in chunks of {chunk_size}")
        if not isinstance(items[8], list) or len(items[8]) > MAX_FILES:
            raise DecodeError(f"manifest files: expected an array of at most {MAX_FILES}")
        files = tuple(_file(f) for f in items[8])
        if type(items[9]) is not bool:
            raise DecodeError("manifest encrypted: expected a boolean")
        manifest = cls(digest, kind, size, chunk_size, chunks, files, items[9])
        if items[7] != manifest.merkle_root:
            raise DecodeError("manifest Merkle root does not match its chunk ids")
        if kind == KIND_FILE and files:
            raise DecodeError("a single-file manifest lists no files")
        if kind == KIND_DIRECTORY:
            if [f.path for f in files] != sorted({f.path for f in files}):
                raise DecodeError("a directory's files must be sorted by path, each once")
            if sum(f.size for f in files) != size:
                raise DecodeError("a directory's file sizes do not add up to its size")
            if directory_id(files) != digest:
                raise DecodeError("a directory manifest's id is not the digest of its file list")
        return manifest


def _file(value: object) -> FileEntry:
    if not isinstance(value, list) or len(value) != 3:
        raise DecodeError("manifest file: expected [path, size, sha256]")
    path = check_path(codec.expect_str(value[0], "file path", MAX_PATH))
    return FileEntry(path, codec.expect_uint(value[1], "file size"), codec.expect_bytes(value[2], "file sha256", 32))
