"""`aichain-node bench …`: measurements printed beside this machine's limits."""

from __future__ import annotations

import typer

bench_app = typer.Typer(
    help="Benchmarks, each beside the machine's limit measured in the same run.", no_args_is_help=True
)


@bench_app.command("tps")
def tps(
    duration: float = typer.Option(30.0, "--duration", help="Seconds of sustained load to measure"),
    senders: int = typer.Option(2000, "--senders", help="Funded accounts sending transfers"),
    block_time_ms: int = typer.Option(1000, "--block-time-ms", help="Target block time"),
    rate_hint: int = typer.Option(
        12000, "--rate-hint", help="Expected tx/s, to size the quick run that sizes the pre-signed workload"
    ),
    rpc_duration: float = typer.Option(
        20.0, "--rpc-duration", help="Seconds measured through JSON-RPC from another process (0: skip)"
    ),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON"),
) -> None:
    """Transfers/s finalized through admission, signature checks, execution and LevelDB commits, in
    the node's process; then the same through JSON-RPC: a validator process, and transfers sent
    with tx_sendBatch from another process."""
    from node.bench.tps import run_tps

    typer.echo(run_tps(duration, senders, rate_hint, block_time_ms, rpc_duration=rpc_duration).render(as_json))


@bench_app.command("state")
def state(
    accounts: int = typer.Option(1_000_000, "--accounts", help="Accounts in the state"),
    block_txs: int = typer.Option(10_000, "--block-txs", help="Transfers in the measured block"),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON"),
) -> None:
    """Block execution + state root with a large state, and account proofs, beside SHA-256 and LevelDB rates."""
    from node.bench.state import run_state

    typer.echo(run_state(accounts, block_txs).render(as_json))


@bench_app.command("testnet")
def testnet_bench(
    validators: int = typer.Option(4, "--validators", help="Validator processes to run on this machine"),
    duration: float | None = typer.Option(
        None, "--duration", help="Seconds of measured load [60; with --rate auto: 15 for each rate tried]"
    ),
    rate: str = typer.Option(
        "2200",
        "--rate",
        help="Offered load, transfers/s; or `auto`: search for the highest rate whose finality p99 stays within 2 s",
    ),
    warmup: float = typer.Option(5.0, "--warmup", help="With --rate auto: seconds of load before each measured window"),
    start_rate: float = typer.Option(2000.0, "--start-rate", help="With --rate auto: the first rate tried"),
    max_steps: int = typer.Option(8, "--max-steps", help="With --rate auto: at most this many rates tried"),
    block_time_ms: int = typer.Option(1000, "--block-time-ms"),
    sync: bool = typer.Option(True, "--sync/--no-sync", help="Also measure a fresh node syncing the history"),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON"),
) -> None:
    """Finalized transfers/s, finality latency (p50/p99), consensus step times and sync speed of a
    local testnet; with --rate auto, the highest offered load whose finality p99 stays within 2 s."""
    from node.bench.testnet import run_testnet_bench, run_testnet_ceiling

    if rate == "auto":
        report = run_testnet_ceiling(
            validators, duration or 15.0, warmup, start_rate, block_time_ms, sync=sync, max_steps=max_steps
        )
    else:
        try:
            offered = float(rate)
        except ValueError:
            raise typer.BadParameter("a number of transfers/s, or auto", param_hint="--rate") from None
        report = run_testnet_bench(validators, duration or 60.0, offered, block_time_ms, sync=sync)
    typer.echo(report.render(as_json))


@bench_app.command("vm")
def vm_bench(
    iterations: int = typer.Option(200_000, "--iterations", help="Iterations of the summing loop"),
    repeats: int = typer.Option(3, "--repeats", help="Runs of each VM; the median is reported"),
    licence_blocks: int = typer.Option(6, "--licence-blocks", help="Blocks of licence purchases to time (0: skip)"),
    block_txs: int = typer.Option(2000, "--block-txs", help="Licence purchases per block"),
    end_to_end_s: float = typer.Option(
        15.0, "--end-to-end-seconds", help="Seconds of purchases through a running validator (0: skip)"
    ),
    gas: bool = typer.Option(True, "--gas/--no-gas", help="Measure ns per gas by kind of work, and a full block"),
    calibration_gas: int = typer.Option(20_000_000, "--calibration-gas", help="Gas of each block timed per kind"),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON"),
) -> None:
    """This VM's instructions/s beside py-evm's on the same loop (needs the `bench` extra), licence
    purchases (three owners, one upstream royalty) executed in blocks and through a running validator,
    and gas: the CPU ns one gas buys for each kind of work (instructions, builtins, storage, events,
    payments, calls, deploys, transfers) with the spread between kinds, and a block of the slowest
    contract kind filled to the default gas limit, its seconds beside the block time."""
    from node.bench.vm import run_vm_bench

    report = run_vm_bench(iterations, repeats, licence_blocks, block_txs, end_to_end_s, gas, calibration_gas)
    typer.echo(report.render(as_json))


@bench_app.command("artifacts")
def artifacts_bench(
    size_mb: int = typer.Option(1024, "--size-mb", help="Size of the random file to ingest, MiB"),
    datadir: str | None = typer.Option(
        None, "--datadir", help="Directory for the file and the store (default: the system temp dir)"
    ),
    transfer: bool = typer.Option(
        True, "--transfer/--no-transfer", help="Also time a node-to-node fetch of the file between two node processes"
    ),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON"),
) -> None:
    """Artifact ingest MB/s beside `sha256sum` on the same file, the ingest's peak RSS, and node-to-node
    transfer beside the TLS loopback rate.

    Writes SIZE_MB MiB of random bytes (not timed), then, on that one file:

    ingest: `ArtifactStore.add_file` into a fresh store, in a child process,
    wall time: reading, whole-file SHA-256, chunk hashing, fsynced chunk
    files, LevelDB commit. Target: at least 0.8x the sha256sum rate.

    sha256sum: the coreutils binary, wall time (the limit printed beside).

    hashlib SHA-256: one thread, 1 MiB reads (the reading thread's ceiling).

    peak RSS: of the ingest child alone (os.wait4). Target: under 150 MB.

    The ingested id must equal both digests, or the bench fails.

    node-to-node: two aichain-node processes on 127.0.0.1; the second fetches the file from the
    first over P2P (every chunk checked, the id re-hashed, fsynced, committed). Beside it: one
    TLS 1.3 loopback connection, same run. Target: at least 200 MB/s.
    """
    from pathlib import Path

    from node.bench.artifact_transfer import measure_transfer
    from node.bench.artifacts import run_artifacts_bench

    hook = measure_transfer if transfer else None
    typer.echo(run_artifacts_bench(size_mb, None if datadir is None else Path(datadir), hook).render(as_json))


@bench_app.command("models")
def models_bench(
    size_mb: int = typer.Option(500, "--size-mb", help="Size of the ONNX model to build, MB"),
    runs: int = typer.Option(30, "--runs", help="Inferences timed each way (interleaved; medians)"),
    batch: int = typer.Option(8, "--batch", help="Rows per inference"),
    datadir: str | None = typer.Option(None, "--datadir", help="Directory for the model and the nodes [temp dir]"),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON"),
) -> None:
    """Pulling a private model from two peers (MB/s beside TLS loopback and SHA-256), and what
    `model run` adds over a plain onnxruntime session on the same model and input.

    Three aichain-node processes on 127.0.0.1. The model (ONNX with external data, SIZE_MB) is
    published private on node A and fetched by node B; a buyer on node C buys a licence and,
    timed, pulls it: C fetches the chunks from A and B, the buyer decrypts them with its
    envelope's key and checks the id against the chain. Target: at least 100 MB/s.

    Then, with the model local and verified, `models.run` against `InferenceSession.run`,
    interleaved, medians. Target: at most 1.10x.
    """
    from pathlib import Path

    from node.bench.models import run_models_bench

    typer.echo(run_models_bench(size_mb, runs, batch, None if datadir is None else Path(datadir)).render(as_json))
