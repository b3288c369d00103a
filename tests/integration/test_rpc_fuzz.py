"""Fuzzing a real node's JSON-RPC endpoint and artifact routes (issue 18, finding 10 and acceptance).

Every method `rpc_methods` lists gets params shaped by their names, plausible and hostile; whole
bodies get malformed, oversized, deeply nested and oddly encoded; hostile bytecode is deployed; the
artifact routes get every method, odd paths and headers (Range, Repr-Digest, X-Artifact-Id,
Content-Encoding) and bodies. The properties, for every input: never HTTP 500, never -32603 (a
client's mistake is never the node's internal error); and for the run: no traceback or ERROR in the
node's log, its event loop never blocked for more than 100 ms, its RSS bounded. The soak variants
(`-m soak`) run the same for longer. Inputs and findings are counted in `FINDINGS` (printed with -s).
"""

from __future__ import annotations

import http.client
import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.transaction import Transaction, TxKind
from node.devnet import DEV_ACCOUNT_KEY, DEV_CHAIN_ID
from tests.harness import NodeProcess
from tests.integration.fuzz_values import RAW_BODIES, artifact_requests, encode, monster_sweep, rpc_requests
from tests.node_health import Health, stall_lines, tracebacks
from vm.compiler import compile_contract

RSS_GROWTH_KIB = 96 * 1024  # the quick run's bound on RSS growth (caches fill; a leak per request would pass it)
SETTINGS = settings(deadline=None, database=None, suppress_health_check=list(HealthCheck))
COUNTS: Counter[str] = Counter()
DEPLOY_ERRORS: Counter[str] = Counter()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    with NodeProcess(tmp_path_factory.mktemp("fuzz"), block_time_ms=200) as running:
        yield running
    print(f"\nfuzz inputs: {dict(COUNTS)}\ndeploy failures: {dict(DEPLOY_ERRORS)}")


@pytest.fixture(scope="module")
def methods(node: NodeProcess) -> dict[str, list[str]]:
    described = node.rpc.call("rpc_methods")
    return {m["name"]: [p["name"] for p in m["params"]] for m in described}


@pytest.fixture(scope="module")
def stored(node: NodeProcess) -> list[str]:
    ids = []
    for data in (b"hello", bytes(range(256)) * 20_000):
        status, body = send(node, "PUT", "/artifacts", {}, data)
        assert status == 201, body
        ids.append(json.loads(body)["id"])
    return ids


@pytest.fixture(scope="module")
def baseline(node: NodeProcess, stored: list[str]) -> Health:
    return Health.of(node)


def send(
    node: NodeProcess, method: str, path: str, headers: dict[str, str], body: bytes | None, timeout: float = 60
) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", node.port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers)
        answer = connection.getresponse()
        return answer.status, answer.read()
    except ConnectionError:
        return 0, b""  # the node closed a connection it would not read on (413, 503, 408): not a failure
    finally:
        connection.close()


def post_rpc(node: NodeProcess, body: bytes) -> tuple[int, Any]:
    status, answer = send(node, "POST", "/", {"Content-Type": "application/json"}, body)
    assert status != 500, (body[:300], answer[:300])
    if status == 204 or status == 0:
        return status, None
    parsed = json.loads(answer)
    for response in parsed if isinstance(parsed, list) else [parsed]:
        error = response.get("error") if isinstance(response, dict) else None
        if error is not None:
            assert error["code"] != -32603, (body[:300], response)
            assert isinstance(error["message"], str) and error["message"]
    return status, parsed


def check_health(node: NodeProcess, before: Health) -> None:
    text = node.log_path.read_text()
    assert not tracebacks(text), tracebacks(text)[:5]
    assert not stall_lines(text), stall_lines(text)[:5]
    now = Health.of(node)
    assert now.stalls_since(before) == 0, now
    assert now.rss_kib - before.rss_kib < RSS_GROWTH_KIB, (before.rss_kib, now.rss_kib)


# --- JSON-RPC ------------------------------------------------------------------------------------


def test_every_method_with_fuzzed_params(node: NodeProcess, methods: dict[str, list[str]], baseline: Health) -> None:
    @settings(SETTINGS, max_examples=600)
    @given(st.data())
    def fuzz(data: st.DataObject) -> None:
        request = data.draw(rpc_requests(methods))
        COUNTS["rpc request"] += 1
        post_rpc(node, encode(request))

    fuzz()
    check_health(node, baseline)


def test_every_parameter_of_every_method_with_every_monster(
    node: NodeProcess, methods: dict[str, list[str]], baseline: Health
) -> None:
    """A systematic sweep beside the random one: huge numbers, long hex, deep nesting, odd text in each param."""
    sweep = monster_sweep(methods)
    for start in range(0, len(sweep), 100):  # batches of 100: each request is answered on its own
        chunk = sweep[start : start + 100]
        body = encode([{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(chunk)])
        COUNTS["rpc monster"] += len(chunk)
        status, answer = post_rpc(node, body)
        assert status == 200 and len(answer) == len(chunk), answer
    check_health(node, baseline)


def test_batches_of_fuzzed_requests(node: NodeProcess, methods: dict[str, list[str]], baseline: Health) -> None:
    @settings(SETTINGS, max_examples=40)
    @given(st.lists(rpc_requests(methods), min_size=1, max_size=30))
    def fuzz(batch: list[dict[str, Any]]) -> None:
        COUNTS["rpc batch"] += 1
        post_rpc(node, encode(batch))

    fuzz()
    check_health(node, baseline)


def test_malformed_oversized_and_oddly_encoded_bodies(node: NodeProcess, baseline: Health) -> None:
    for body in RAW_BODIES:
        COUNTS["rpc raw body"] += 1
        post_rpc(node, body)
    for headers, body in (
        ({"Content-Encoding": "gzip"}, b"not gzip"),
        ({"Content-Encoding": "deflate"}, b"\x00" * 9),
        ({"Content-Type": "text/plain"}, b"{}"),
        ({"Transfer-Encoding": "chunked"}, b"zz\r\n{}\r\n0\r\n\r\n"),
    ):
        COUNTS["rpc raw body"] += 1
        status, answer = send(node, "POST", "/", {"Content-Type": "application/json", **headers}, body)
        assert status != 500 and status < 500, (headers, status, answer)
    check_health(node, baseline)


def test_hostile_bytecode_deploys_are_refused_cleanly(node: NodeProcess, baseline: Health) -> None:
    """Mutated bytecode of a real contract, deployed over RPC: each transaction is refused at admission with a
    documented error or fails in its receipt with a reason; nothing reaches the node's log as a traceback."""
    code = compile_contract((node_root() / "vm" / "system" / "payments.contract").read_text()).encode()
    mutation = st.tuples(
        st.lists(st.tuples(st.integers(0, len(code) - 1), st.integers(0, 255)), min_size=1, max_size=4),
        st.sampled_from(["flip", "cut", "grow"]),
    )

    @settings(SETTINGS, max_examples=3)
    @given(st.lists(mutation, min_size=25, max_size=25))
    def fuzz(mutations: list[tuple[list[tuple[int, int]], str]]) -> None:
        nonce = node.rpc.call("state_getAccount", "0x" + DEV_ACCOUNT_KEY.address.hex())["pending_nonce"]
        raws = []
        for edits, how in mutations:
            mutated = bytearray(code)
            for at, byte in edits:
                mutated[at] = byte
            if how == "cut":
                mutated = mutated[: edits[0][0]]
            elif how == "grow":
                mutated += bytes(edits[0][1] for _ in range(edits[0][0] % 64))
            data = encode_deploy_data(bytes(mutated))
            tx = Transaction(
                DEV_CHAIN_ID, DEV_ACCOUNT_KEY.public_key, nonce + len(raws), 5_000_000, 1, TxKind.DEPLOY, b"", 0, data
            )
            raws.append("0x" + tx.signed_by(DEV_ACCOUNT_KEY).encoded.hex())
        COUNTS["hostile deploy"] += len(raws)
        _, answer = post_rpc(node, encode({"jsonrpc": "2.0", "id": 1, "method": "tx_sendBatch", "params": [raws]}))
        for outcome in answer["result"]:
            if "hash" not in outcome:
                continue
            receipt = node.rpc.call("tx_wait", outcome["hash"], 30)
            assert receipt is not None and receipt["status"] in ("success", "failed"), receipt
            if receipt["status"] == "failed":
                assert isinstance(receipt["error"], str) and receipt["error"], receipt
                DEPLOY_ERRORS[receipt["error"][:60]] += 1

    fuzz()
    check_health(node, baseline)


def encode_deploy_data(code: bytes) -> bytes:
    from core import codec

    return codec.encode([code, []])


def node_root() -> Any:
    from pathlib import Path

    return Path(__file__).resolve().parents[2]


# --- artifact HTTP -------------------------------------------------------------------------------


def test_artifact_routes_with_fuzzed_methods_paths_headers_and_bodies(
    node: NodeProcess, stored: list[str], baseline: Health
) -> None:
    @settings(SETTINGS, max_examples=300)
    @given(artifact_requests(stored))
    def fuzz(request: tuple[str, str, dict[str, str], bytes | None]) -> None:
        method, path, headers, body = request
        COUNTS["artifact request"] += 1
        status, answer = send(node, method, path, headers, body)
        assert status < 500, (method, path, headers, status, answer[:300])

    fuzz()
    check_health(node, baseline)


# --- soak ----------------------------------------------------------------------------------------


@pytest.mark.soak
@pytest.mark.timeout(3600)
def test_soak_rpc_and_artifacts(
    node: NodeProcess, methods: dict[str, list[str]], stored: list[str], baseline: Health
) -> None:
    """The same properties for about 20,000 inputs, with RSS sampled as it goes: it must level off."""
    samples: list[int] = []
    started = time.monotonic()

    @settings(SETTINGS, max_examples=20_000)
    @given(st.data())
    def fuzz(data: st.DataObject) -> None:
        kind = data.draw(st.sampled_from(["rpc", "rpc", "rpc", "batch", "artifact"]))
        if kind == "rpc":
            post_rpc(node, encode(data.draw(rpc_requests(methods))))
        elif kind == "batch":
            post_rpc(node, encode(data.draw(st.lists(rpc_requests(methods), min_size=1, max_size=20))))
        else:
            method, path, headers, body = data.draw(artifact_requests(stored))
            status, answer = send(node, method, path, headers, body)
            assert status < 500, (method, path, headers, status, answer[:300])
        COUNTS[f"soak {kind}"] += 1
        if sum(v for k, v in COUNTS.items() if k.startswith("soak")) % 500 == 0:
            samples.append(Health.of(node).rss_kib)

    fuzz()
    check_health_soak(node, baseline, samples)
    print(
        f"\nsoak: {sum(v for k, v in COUNTS.items() if k.startswith('soak'))} inputs in "
        f"{time.monotonic() - started:.0f} s; RSS samples (KiB): {samples}"
    )


def check_health_soak(node: NodeProcess, before: Health, samples: list[int]) -> None:
    text = node.log_path.read_text()
    assert not tracebacks(text), tracebacks(text)[:5]
    assert Health.of(node).stalls_since(before) == 0
    if len(samples) >= 9:  # the last third grows less than 32 MiB over the middle third: no leak per request
        third = len(samples) // 3
        assert max(samples[-third:]) - max(samples[third : 2 * third]) < 32 * 1024, samples
