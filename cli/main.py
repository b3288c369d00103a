"""The `aichain-node` command."""

from __future__ import annotations

import typer

from cli.artifact_cmds import artifact_app
from cli.contract_cmds import contract_app
from cli.dataset_cmds import dataset_app
from cli.key_cmds import account_app, keys_app
from cli.licence_cmds import licence_app
from cli.model_cmds import model_app
from cli.node_cmds import init, start, status
from cli.testnet_cmds import testnet_app
from cli.tx_cmds import tx_app
from cli.validator_cmds import validator_app

app = typer.Typer(
    name="aichain-node",
    help="A BFT Proof-of-Authority blockchain node for sharing AI models and datasets.\n\n"
    "Quick start: `aichain-node start --dev`, then in another terminal "
    "`aichain-node tx transfer --from dev --to 0x… --amount 10`.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command()(init)
app.command()(start)
app.command()(status)
app.add_typer(keys_app, name="keys")
app.add_typer(account_app, name="account")
app.add_typer(tx_app, name="tx")
app.add_typer(contract_app, name="contract")
app.add_typer(artifact_app, name="artifact")
app.add_typer(model_app, name="model")
app.add_typer(licence_app, name="licence")
app.add_typer(dataset_app, name="dataset")
app.add_typer(testnet_app, name="testnet")
app.add_typer(validator_app, name="validator")


def _add_bench() -> None:
    from cli.bench_cmds import bench_app

    app.add_typer(bench_app, name="bench")


_add_bench()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
