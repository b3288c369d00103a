"""The keystore: named, password-encrypted PKCS#8 PEM key files in one directory.

Default location `~/.aichain/keystore` (`AICHAIN_KEYSTORE` or `--keystore` to change).
A key is referred to by its name (`alice` -> `alice.pem`), by a path to a PEM file, or by
its address if a key file for it is in the keystore.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.errors import KeyFileError
from core.keys import PrivateKey, address_hex, read_key_file, write_key_file

DEFAULT_KEYSTORE = Path("~/.aichain/keystore").expanduser()


def keystore_dir(explicit: Path | None = None) -> Path:
    if explicit is not None:
        return explicit.expanduser()
    env = os.environ.get("AICHAIN_KEYSTORE")
    return Path(env).expanduser() if env else DEFAULT_KEYSTORE


def key_path(name_or_path: str, keystore: Path) -> Path:
    """Resolve a key reference to a file: an existing path, a name, or an address in the keystore."""
    candidate = Path(name_or_path).expanduser()
    if candidate.suffix == ".pem" or os.sep in name_or_path:
        return candidate
    by_name = keystore / f"{name_or_path}.pem"
    if by_name.exists() or not name_or_path.lower().startswith("0x"):
        return by_name
    wanted = name_or_path.lower()
    for path in sorted(keystore.glob("*.pem")):
        if path.stem.lower() == wanted:
            return path
        try:
            if address_hex(read_key_file(path, None).address) == wanted:
                return path
        except KeyFileError:
            continue  # encrypted keys are found by name only
    raise KeyFileError(f"no key for {name_or_path} in {keystore}; list keys with `aichain-node keys list`")


def save_key(name: str, key: PrivateKey, keystore: Path, password: str | None, *, overwrite: bool = False) -> Path:
    if not name or any(c in name for c in "/\\\0") or name.startswith("."):
        raise KeyFileError(f"{name!r} is not a usable key name (no slashes, not starting with a dot)")
    path = keystore / f"{name}.pem"
    if path.exists() and not overwrite:
        raise KeyFileError(f"a key named {name!r} already exists at {path}")
    keystore.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_key_file(path, key, password)
    return path


def list_keys(keystore: Path) -> list[tuple[str, Path, str | None]]:
    """(name, path, address or None if encrypted) for every key file in the keystore."""
    out = []
    for path in sorted(keystore.glob("*.pem")):
        try:
            address: str | None = address_hex(read_key_file(path, None).address)
        except KeyFileError:
            address = None
        out.append((path.stem, path, address))
    return out
