"""Shared CLI plumbing: output (human or --json), errors, the RPC endpoint and its client, key loading."""

from __future__ import annotations

import atexit
import getpass
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from aichain_node import Client, NodeError, NodeUnreachable
from aichain_node.aclient import DEFAULT_MODEL_CACHE_DIR
from aichain_node.content_keys import DEFAULT_CONTENT_KEY_DIR
from core.errors import AichainError, KeyFileError, WrongPassword
from core.keys import PrivateKey, parse_address, read_key_file
from node.config import DEFAULT_RPC_PORT
from node.keystore import key_path, keystore_dir

DEFAULT_RPC = f"http://127.0.0.1:{DEFAULT_RPC_PORT}"
P = ParamSpec("P")
T = TypeVar("T")

RpcOption = typer.Option(None, "--rpc", help="Node RPC URL [env AICHAIN_RPC; default http://127.0.0.1:8545]")
JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON")
KeystoreOption = typer.Option(None, "--keystore", help="Key directory [env AICHAIN_KEYSTORE; ~/.aichain/keystore]")
QuietOption = typer.Option(False, "--quiet", "-q", help="No progress bar")
AdminTokenFileOption = typer.Option(
    None,
    "--admin-token-file",
    help="File holding the node's admin token ([rpc] admin_token_file), for admin calls to a node on another "
    "machine or behind a proxy [env AICHAIN_ADMIN_TOKEN_FILE]",
)
PasswordFileOption = typer.Option(
    None, "--password-file", help="File holding the key password [env AICHAIN_PASSWORD holds it directly]"
)


def rpc_url(explicit: str | None) -> str:
    return explicit or os.environ.get("AICHAIN_RPC") or DEFAULT_RPC


def model_cache_dir() -> Path:
    """Where pulled models go: AICHAIN_MODEL_CACHE, else the SDK's default (~/.aichain/models)."""
    return Path(os.environ.get("AICHAIN_MODEL_CACHE") or DEFAULT_MODEL_CACHE_DIR).expanduser()


def content_key_dir() -> Path:
    """Where the content keys this machine made are kept: AICHAIN_CONTENT_KEYS, else the SDK's default
    (~/.aichain/content-keys)."""
    return Path(os.environ.get("AICHAIN_CONTENT_KEYS") or DEFAULT_CONTENT_KEY_DIR).expanduser()


def admin_token(explicit: Path | None = None) -> str | None:
    """The node's admin token, from `--admin-token-file`, else the file AICHAIN_ADMIN_TOKEN_FILE names; None
    without either (a client on the node's own machine needs none). An unreadable file ends the command."""
    named = explicit or os.environ.get("AICHAIN_ADMIN_TOKEN_FILE")
    if not named:
        return None
    path = Path(named).expanduser()
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read the admin token file {path} (--admin-token-file / AICHAIN_ADMIN_TOKEN_FILE): {exc}")
    if not token:
        fail(f"the admin token file {path} is empty")
    return token


def admin_header(explicit: Path | None = None) -> dict[str, str]:
    """The Authorization header carrying the admin token, if there is one (for requests sent without the SDK)."""
    token = admin_token(explicit)
    return {} if token is None else {"Authorization": f"Bearer {token}"}


def sdk_client(
    url: str, key: PrivateKey | None = None, *, node_key: bytes | None = None, admin_token_file: Path | None = None
) -> Client:
    """The SDK's client of the node at `url`, as `key`, keeping models and content keys where this command does,
    and sending the admin token if one is given (`admin_token`)."""
    return Client(
        url,
        key,
        node_key=node_key,
        model_cache_dir=model_cache_dir(),
        content_key_dir=content_key_dir(),
        admin_token=admin_token(admin_token_file),
    )


_clients: dict[tuple[str, Path | None], Client] = {}


def client(explicit: str | None, admin_token_file: Path | None = None) -> Client:
    """The SDK's client of the node at the RPC URL (`--rpc`, else AICHAIN_RPC, else the default), for JSON-RPC
    calls: one per URL (and admin token file) for the command, closed when it exits."""
    url = rpc_url(explicit)
    if (url, admin_token_file) not in _clients:
        made = _clients[url, admin_token_file] = sdk_client(url, admin_token_file=admin_token_file)
        atexit.register(made.close)
    return _clients[url, admin_token_file]


def rpc_guarded(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run `fn`, a call of the node's client: no node answering, or the node refusing, is one line and exit
    code 1 (a refusal with the node's words and its JSON-RPC code)."""
    try:
        return fn(*args, **kwargs)
    except NodeUnreachable as exc:
        fail(str(exc))
    except NodeError as exc:  # its message ends with the code already
        fail(f"the node refused: {exc}")
    except AichainError as exc:
        fail(f"the node refused: {exc} (code {exc.rpc_code})")


def sent_to(node: Client) -> str:
    """Which chain a transaction went to. Every dev chain has the same id and the same funded key, so a
    `--from dev` command can land on another machine's or another testnet's chain: the URL says which."""
    return f"sent to chain {node.chain_id()} at {node.url}"


def fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def emit(data: Any, as_json: bool, human: str | None = None) -> None:
    if as_json:
        typer.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        typer.echo(human if human is not None else json.dumps(data, indent=2))


def password_from(password_file: Path | None, *, prompt: str | None = None, confirm: bool = False) -> str | None:
    if password_file is not None:
        try:
            return password_file.read_text().rstrip("\r\n")
        except OSError as exc:
            fail(f"cannot read the password file {password_file}: {exc.strerror}")
    env = os.environ.get("AICHAIN_PASSWORD")
    if env is not None:
        return env
    if prompt is not None and sys.stdin.isatty():
        first = getpass.getpass(prompt)
        if confirm and getpass.getpass("Repeat the password: ") != first:
            fail("the passwords differ")
        return first
    return None


def load_key(ref: str, keystore: Path | None, password_file: Path | None) -> PrivateKey:
    path = key_path(ref, keystore_dir(keystore))
    try:
        return read_key_file(path, password_from(password_file))
    except WrongPassword:
        password = password_from(password_file, prompt=f"Password for {path.name}: ")
        if password is None:
            fail(f"{path} is encrypted: give its password with --password-file or AICHAIN_PASSWORD")
        return read_key_file(path, password)


def run_guarded(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run `fn`, turning the errors a user can meet into one clear line and exit code 1."""
    try:
        return fn(*args, **kwargs)
    except AichainError as exc:
        fail(str(exc))


def resolve_address(who: str, keystore: Path | None) -> bytes:
    """An address given as 0x-hex, or the address of a key in the keystore (by name or path)."""
    if who.lower().startswith("0x"):
        return parse_address(who)
    path = key_path(who, keystore_dir(keystore))
    if not path.exists():
        raise KeyFileError(f"{who!r} is neither an address (0x + 40 hex) nor a key in {path.parent}")
    return load_key(who, keystore, None).address


@contextmanager
def progress_bar(total: int | None, description: str, quiet: bool) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr (bytes, rate, time left); `advance(n)` moves it."""
    if quiet:
        yield lambda n: None
        return
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)
