"""The `--executor ray` flags that `search` and `ablate` share (typer option defaults)."""

from __future__ import annotations

import typer

RAY_ADDRESS = typer.Option(
    None,
    "--ray-address",
    help="Ray: auto or ray://host:port (default $RAY_ADDRESS or a new local cluster).",
)
TRIALS_IN_PARALLEL = typer.Option(
    None, "--trials-in-parallel", help="Ray: trials at once (default: what the cluster fits)."
)
CPUS_PER_TRIAL = typer.Option(None, "--cpus-per-trial", help="Ray: CPUs per trial (1).")
GPUS_PER_TRIAL = typer.Option(None, "--gpus-per-trial", help="Ray: GPUs per trial (0).")
