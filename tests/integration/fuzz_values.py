"""Hypothesis strategies for what a hostile client sends a node: JSON-RPC params shaped by the parameter's
name (mostly plausible, with hostile values mixed in), whole request bodies, and artifact HTTP requests
(methods, paths, Range, Repr-Digest, X-Artifact-Id, Content-Encoding, bodies)."""

from __future__ import annotations

import base64
import gzip
import io
import json
import tarfile
import zlib
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

from core.keys import PrivateKey, address_hex
from core.transaction import Transaction, TxKind
from node.devnet import DEV_ACCOUNT_KEY, DEV_CHAIN_ID

DEV = address_hex(DEV_ACCOUNT_KEY.address)
WAITING = {"timeout_s", "wait_s"}  # a plausible value would make the fuzz wait: never more than 0 s


def _deep(depth: int, leaf: Any = 0, as_dict: bool = False) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"a": value} if as_dict else [value]
    return value


_hexes = st.binary(max_size=40).map(lambda b: "0x" + b.hex())
_huge_ints = st.one_of(st.integers(-(2**300), 2**300), st.sampled_from([2**64, 2**256, 2**256 - 1, -1, 10**4000]))
MONSTERS = [
    2**64,
    2**256,
    2**256 - 1,
    -1,
    10**4000,
    10**300,
    -(2**300),
    "",
    "0x",
    "0x0",
    "0X1",
    "0x" + "f" * 65,
    "0x" + "f" * 4000,
    "0xZZ",
    " 0x1",
    "0x1 ",
    "0x1_0",
    "-0x1",
    "1e5",
    "latest",
    "pending",
    "earliest",
    "safe",
    "finalized",
    "LATEST",
    "sha256:" + "0" * 64,
    "sha256:",
    "sha256:zz",
    "\u0000",
    "\ud800",
    "é" * 300,
    "a" * 70_000,
    "../../etc/passwd",
    "%00",
    "{}",
    "[]",
    "null",
    _deep(40),
    _deep(100),
    _deep(600),
    _deep(100, as_dict=True),
    [1] * 5000,
    {"str": "x"},
    {"str": 5},
    1.5,
    -0.0,
    1e308,
    True,
    False,
    None,
    [],
    {},
    [None],
    {"": None},
]
_monsters = st.sampled_from(MONSTERS)
_leaves = st.one_of(st.none(), st.booleans(), _huge_ints, st.floats(allow_nan=False), st.text(max_size=30), _hexes)
hostile_json = st.one_of(
    _monsters,
    st.recursive(
        _leaves,
        lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=15,
    ),
)

_addresses = st.one_of(st.just(DEV), st.just("0x" + "00" * 20), st.binary(min_size=20, max_size=20).map(address_hex))
_hashes = st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex())
_heights = st.one_of(st.integers(0, 40), st.integers(0, 40).map(hex))
_artifact_ids = st.binary(min_size=32, max_size=32).map(lambda b: "sha256:" + b.hex())
_contract_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**255), 2**255 - 1), _hexes, st.text(max_size=10)),
    lambda inner: st.lists(inner, max_size=4),
    max_leaves=8,
)


@st.composite
def signed_transactions(draw: st.DrawFn) -> str:
    """A signed transaction with any kind, nonce, gas, value and data: what admission must judge."""
    key = draw(st.sampled_from([DEV_ACCOUNT_KEY, PrivateKey.from_seed(bytes(32))]))
    tx = Transaction(
        chain_id=draw(st.sampled_from([DEV_CHAIN_ID, DEV_CHAIN_ID + 1, 0])),
        sender=key.public_key,
        nonce=draw(st.integers(0, 2**64 - 1)),
        gas_limit=draw(st.integers(0, 2**64 - 1)),
        gas_price=draw(st.integers(0, 2**64 - 1)),
        kind=draw(st.sampled_from(list(TxKind))),
        to=draw(st.sampled_from([b"", bytes(20), DEV_ACCOUNT_KEY.address, bytes(19)])),
        value=draw(st.integers(0, 2**64 - 1)),
        data=draw(st.binary(max_size=200)),
    )
    return "0x" + tx.signed_by(key).encoded.hex()


_raw_txs = st.one_of(signed_transactions(), _hexes)

PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "address": _addresses,
    "from": _addresses,
    "hash": _hashes,
    "height": _heights,
    "from_height": _heights,
    "to_height": _heights,
    "block": st.one_of(st.sampled_from(["latest", "earliest", "pending"]), _heights),
    "full": st.booleans(),
    "pin": st.booleans(),
    "force": st.booleans(),
    "erase": st.booleans(),
    "repair": st.booleans(),
    "id": _artifact_ids,
    "raw": _raw_txs,
    "raws": st.lists(_raw_txs, min_size=1, max_size=4),
    "function": st.sampled_from(["f", "constructor", "balance_of", "", "x" * 70]),
    "args": st.lists(_contract_values, max_size=4),
    "name": st.sampled_from(["counter", "balances", "Transfer", ""]),
    "key": _contract_values,
    "timeout_s": st.just(0),
    "wait_s": st.just(0),
}


DEFAULTS: dict[str, Any] = {
    "address": DEV,
    "from": DEV,
    "hash": "0x" + "00" * 32,
    "height": 1,
    "from_height": 1,
    "to_height": 2,
    "block": "latest",
    "full": False,
    "pin": False,
    "force": False,
    "erase": False,
    "repair": False,
    "id": "sha256:" + "00" * 32,
    "raw": "0x00",
    "raws": ["0x00"],
    "function": "f",
    "args": [],
    "name": "counter",
    "key": None,
    "timeout_s": 0,
    "wait_s": 0,
}


def monster_sweep(methods: dict[str, list[str]]) -> list[tuple[str, list[Any]]]:
    """Every monster in every parameter of every method, the other parameters plausible: (method, params)."""
    out = []
    for method, names in sorted(methods.items()):
        for position, name in enumerate(names):
            for monster in MONSTERS:
                params = [DEFAULTS.get(n, 0) for n in names]
                params[position] = _no_wait(name, monster)
                out.append((method, params))
    return out


def value_for(name: str) -> st.SearchStrategy[Any]:
    """Mostly a plausible value for a parameter of this name; sometimes anything at all."""
    plausible = PLAUSIBLE.get(name, hostile_json)
    return st.one_of(plausible, plausible, _monsters, hostile_json).map(lambda v: _no_wait(name, v))


def _no_wait(name: str, value: Any) -> Any:
    if name not in WAITING:
        return value
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        return 0  # null means the default, 30 s
    if isinstance(value, str) and value.startswith("0x"):
        return 0
    return value


@st.composite
def rpc_requests(draw: st.DrawFn, methods: dict[str, list[str]]) -> dict[str, Any]:
    """A request to one of `methods` (name -> param names): params by position or by name, too few or too many."""
    method = draw(st.sampled_from(sorted(methods)))
    names = methods[method]
    shape = draw(st.sampled_from(["positional", "positional", "named", "extra", "absent", "scalar"]))
    params: Any
    if shape == "positional":
        params = [draw(value_for(n)) for n in names[: draw(st.integers(0, len(names)))]]
    elif shape == "named":
        params = {n: draw(value_for(n)) for n in names if draw(st.booleans())}
        if draw(st.booleans()):
            params[draw(st.text(max_size=8))] = draw(hostile_json)
    elif shape == "extra":
        params = [draw(value_for(n)) for n in names] + [draw(hostile_json)]
    elif shape == "absent":
        params = None
    else:
        params = draw(hostile_json)
    waits = [i for i, n in enumerate(names) if n in WAITING]  # left out, it would default to 30 s
    if waits and isinstance(params, list) and params:
        params += [0] * (waits[0] + 1 - len(params))
        params[waits[0]] = 0
    elif waits and isinstance(params, dict) and params:
        params[names[waits[0]]] = 0
    request: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        request["params"] = params
    if draw(st.integers(0, 9)):  # one in ten is a notification
        request["id"] = draw(st.one_of(st.integers(-(2**70), 2**70), st.text(max_size=10), st.none()))
    return request


def encode(request: Any) -> bytes:
    """JSON with any Python int (json.dumps refuses ints over 4300 digits: write those by hand)."""
    try:
        return json.dumps(request).encode()
    except ValueError:
        return json.dumps(request, default=str).replace('"__BIG__"', "1" * 5000).encode()


RAW_BODIES = [
    b"",
    b"{",
    b"[",
    b"[]",
    b"{}",
    b"null",
    b"0",
    b'"x"',
    b"\xff\xfe",
    b"\xef\xbb\xbf{}",
    b"NaN",
    b"[" * 10_000,
    b'{"jsonrpc":"2.0","id":' + b"1" * 5000 + b',"method":"eth_blockNumber"}',
    b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[' + b"9" * 4400 + b"]}",
    b'{"jsonrpc":"2.0","id":1e999,"method":"eth_blockNumber"}',
    b'{"jsonrpc":"2.0","id":-0.0,"method":"x"}',
    b"[" + b",".join([b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber"}'] * 1001) + b"]",
    b"[" + b",".join([b'{"jsonrpc":"2.0","method":"net_version"}'] * 50) + b"]",
    b"[" + b",".join([b"0"] * 300_000) + b"]",
    b'{"jsonrpc":"2.0","id":1,"method":"contract_call","params":["'
    + DEV.encode()
    + b'","f",'
    + b"[" * 900
    + b"]" * 900
    + b"]}",
    b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","jsonrpc":"1.0"}',
    b'{"jsonrpc":"2.0","id":1,"method":"\\ud800"}',
    b'{"jsonrpc":"2.0","id":"\\u0000","method":"rpc_methods"}',
]


# --- artifact HTTP ------------------------------------------------------------------------------


def _tar(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


_ranges = st.one_of(
    st.tuples(st.integers(0, 2**70), st.integers(0, 2**70)).map(lambda t: f"bytes={t[0]}-{t[1]}"),
    st.integers(0, 2**70).map(lambda n: f"bytes={n}-"),
    st.integers(0, 2**70).map(lambda n: f"bytes=-{n}"),
    st.sampled_from(
        [
            "bytes=",
            "bytes=-",
            "bytes=0-0,1-1",
            "items=0-1",
            "bytes=٣-",
            "bytes=" + "9" * 5000 + "-",
            "bytes=-" + "9" * 5000,
            "bytes=5-1",
            "bytes=0-" + "9" * 20,
            "garbage",
            "bytes=-0",
        ]
    ),
    st.text(max_size=20),
)
_digests = st.one_of(
    st.binary(max_size=40).map(lambda b: f"sha-256=:{base64.b64encode(b).decode()}:"),
    st.sampled_from(
        [
            "sha-256=:abc:",
            "sha-256=::",
            "sha-256=:!!!!:",
            "sha-512=:AAAA:",
            "sha-256=:" + "A" * 5000 + ":",
            "sha-256=:" + "QUFB" * 4 + ":",
            "sha-256=:=:",
            " sha-256 = :x:",
            "sha-256",
        ]
    ),
    st.text(max_size=30),
)
_base64 = st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode())
_ids = st.one_of(
    _artifact_ids, st.sampled_from(["sha256:", "sha256:" + "0" * 63, "md5:00", "", "x" * 300]), st.text(max_size=20)
)
_bodies = st.one_of(
    st.binary(max_size=3000),
    st.binary(max_size=3000).map(gzip.compress),
    st.binary(max_size=3000).map(zlib.compress),
    st.dictionaries(st.sampled_from(["a", "b/c", "../x", "/abs", "d/"]), st.binary(max_size=100), max_size=3).map(_tar),
    st.just(gzip.compress(bytes(20_000_000))),  # a small bomb: 20 MB of zeros in 20 KB
)
_paths = st.one_of(
    st.sampled_from(
        [
            "/artifacts",
            "/artifacts/",
            "/artifacts/{id}",
            "/artifacts/{id}/stored",
            "/artifacts/{id}/stored?follow=true",
            "/artifacts/{id}/files/a",
            "/artifacts/{id}/files/../../x",
            "/artifacts/{id}/files/%00",
            "/artifacts/{id}/files/" + "a" * 5000,
            "/artifacts?pin=false",
            "/artifacts?encrypt=true",
            "/artifacts?encrypt=1&pin=0",
            "/metrics",
            "/health",
            "/",
            "/artifacts/{id}/files/é",
            "/artifacts/{id}?x=%ff%fe",
        ]
    ),
)


@st.composite
def artifact_requests(draw: st.DrawFn, known: list[str]) -> tuple[str, str, dict[str, str], bytes | None]:
    """(method, path, headers, body) against the artifact routes; `known` are ids the node stores."""
    method = draw(st.sampled_from(["GET", "GET", "HEAD", "PUT", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"]))
    artifact = draw(st.one_of(st.sampled_from(known), _ids)) if known else draw(_ids)
    path = quote(draw(_paths).replace("{id}", artifact.replace("/", "%2F")), safe="/?=&%:")  # the request line is ASCII
    headers: dict[str, str] = {}
    for name, strategy in (
        ("Range", _ranges),
        ("Repr-Digest", _digests),
        ("X-Artifact-Id", _ids),
        ("Content-Encoding", st.sampled_from(["gzip", "deflate", "br", "zstd", "identity", "x", "gzip, gzip", ""])),
        (
            "Content-Type",
            st.sampled_from(["application/x-tar", "application/octet-stream", "application/json", "text/plain", ""]),
        ),
        ("X-Content-Key", st.one_of(_base64, st.text(max_size=20))),
    ):
        if draw(st.integers(0, 3)) == 0:
            headers[name] = draw(strategy)
    headers = {k: v for k, v in headers.items() if _header_ok(v)}
    body = draw(_bodies) if method in ("PUT", "POST", "PATCH") else None
    return method, path, headers, body


def _header_ok(value: str) -> bool:
    """What http.client can put on the wire (latin-1, no line breaks)."""
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return "\r" not in value and "\n" not in value and "\x00" not in value
