"""`aichain-node bench …`: measurements printed beside this machine's limits."""

from __future__ import annotations

import typer

bench_app = typer.Typer(help="Benchmarks, each beside the machine's limit measured in the same run.",
                        no_args_is_help=True)  # fmt: skip
