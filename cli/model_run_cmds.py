"""`aichain-node model verify | run | receipts`: check a local copy against the chain, run a verified
model on numpy inputs (recording a signed receipt, or re-checking one), and list the receipts of a version.

    aichain-node model verify ./net.onnx net@1
    aichain-node model run net --input x.npy --record --from bob
    aichain-node model run net --input x.npy --check 1
    aichain-node model receipts net@1

They are registered on the `model` group by `cli.model_cmds`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from cli.artifact_private import NodeKeyOption
from cli.common import (
    JsonOption,
    KeystoreOption,
    PasswordFileOption,
    RpcOption,
    emit,
    fail,
    rpc_url,
    sdk_client,
    sent_to,
)
from cli.model_common import (
    FromOption,
    ModelArgument,
    connect,
    guarded,
)
from core.units import format_amount


def verify(
    path: Path = typer.Argument(..., help="A local model file or directory"),
    model: str = ModelArgument,
    rpc: str | None = RpcOption,
    as_json: bool = JsonOption,
) -> None:
    """Check that a local copy is exactly a version on chain (exit code 1 if not)."""
    if not path.exists():
        fail(f"{path} does not exist")
    with sdk_client(rpc_url(rpc)) as node:
        result = guarded(lambda: node.models.verify(path, model))
    emit(result, as_json, f"ok: {path} is {result['model']}@{result['version']} ({result['artifact']})")


def run(
    model: str = ModelArgument,
    input_path: Path = typer.Option(..., "--input", "-i", help="Inputs: a .npy (one input) or .npz (by name)"),
    output: Path | None = typer.Option(None, "--output", "-o", help="Save the outputs (.npz, or .npy for one)"),
    record: bool = typer.Option(
        False, "--record", help="Record a signed inference receipt on chain (a per-use licence is charged one use)"
    ),
    model_path: Path | None = typer.Option(
        None, "--model-path", help="Run this local copy (verified against the chain first) instead of the pulled one"
    ),
    check: int | None = typer.Option(
        None,
        "--check",
        help="Re-run recorded inference #N of this version on these inputs and compare with its receipt (exit code 1 "
        "if they differ)",
    ),
    sender: str | None = FromOption,
    node_key: str | None = NodeKeyOption,
    rpc: str | None = RpcOption,
    keystore: Path | None = KeystoreOption,
    password_file: Path | None = PasswordFileOption,
    as_json: bool = JsonOption,
) -> None:
    """Run a verified model version on numpy inputs with onnxruntime; print or save the outputs.

    With --check N it re-runs a recorded inference instead: anyone holding the model and the
    inputs can confirm that receipt #N (`model receipts`) is what the model gives."""
    from aichain_node.inference import load_inputs, save_outputs

    if record and sender is None:
        fail("--record signs a receipt: give --from KEY")
    if record and check is not None:
        fail("--check re-runs a receipt already recorded: drop --record")
    inputs = guarded(lambda: load_inputs(input_path))
    if check is not None:
        with connect(rpc, sender, keystore, password_file, node_key) as node:
            checked = guarded(lambda: node.models.check(model, check, inputs, path=model_path))
        _report_check(checked, as_json)
        return
    with connect(rpc, sender, keystore, password_file, node_key) as node:
        result = guarded(lambda: node.models.run(model, inputs, record=record, path=model_path))
        where = sent_to(node) if result.receipt is not None else ""
    report = result.to_json()
    if output is not None:
        guarded(lambda: save_outputs(result.outputs, output))
        report["saved_to"] = str(output)
    else:
        report["values"] = {k: v.tolist() for k, v in result.outputs.items()}
    lines = [f"{result.model}@{result.version}  input 0x{result.input_hash.hex()}  output 0x{result.output_hash.hex()}"]
    if output is not None:
        lines.append(f"outputs saved to {output}")
    else:
        for name, value in result.outputs.items():
            lines.append(f"{name} {value.dtype} {list(value.shape)}:\n{value}")
    if result.receipt is not None:
        charged = f", charged {format_amount(result.charged or 0)}" if result.charged else ""
        lines.append(f"receipt {result.receipt} recorded{charged}")
        lines.append(where)
    emit(report, as_json, "\n".join(lines))


def _report_check(checked: dict[str, Any], as_json: bool) -> None:
    ref = f"{checked['model']}@{checked['version']} receipt #{checked['number']}"
    report = {k: v for k, v in checked.items() if k != "outputs"}
    if not checked["inputs_match"]:
        line = (
            f"these inputs are not the ones {ref} recorded: their digest is {checked['rerun_input_hash']}, "
            f"the receipt's {checked['input_hash']}"
        )
    elif not checked["outputs_match"]:
        line = (
            f"{ref} does not hold: the model gives outputs {checked['rerun_output_hash']}, the receipt says "
            f"{checked['output_hash']} (recorded by {checked['runner']})"
        )
    else:
        line = f"{ref} holds: same inputs, same outputs {checked['output_hash']} (recorded by {checked['runner']})"
    if as_json:
        emit(report, True)
        if not checked["outputs_match"]:
            raise typer.Exit(1)
    elif checked["outputs_match"]:
        typer.echo(line)
    else:
        fail(line)


def receipts(
    model: str = ModelArgument,
    first: int = typer.Option(1, "--first", help="First receipt number"),
    count: int = typer.Option(256, "--count", help="How many"),
    rpc: str | None = RpcOption,
    as_json: bool = JsonOption,
) -> None:
    """The inference receipts recorded for a version: number, hash, digests, runner, height, charge."""
    with sdk_client(rpc_url(rpc)) as node:
        rows = guarded(lambda: node.models.receipts(model, first=first, count=count))
    lines = [
        f"#{r['number']}  {r['receipt']}  by {r['runner']} at height {r['height']}  in {r['input_hash'][:18]}…  "
        f"out {r['output_hash'][:18]}…" + (f"  charged {format_amount(r['charged'])}" if r["charged"] else "")
        for r in rows
    ]
    emit(rows, as_json, "\n".join(lines) if lines else "no receipts recorded")
