"""`normnas slim`: BN-scale channel pruning of a study's best network. Heavy imports are lazy."""

from __future__ import annotations

from pathlib import Path

import typer

from normnas.cli.errors import fail, reported


def _ratios(text: str) -> list[float]:
    try:
        return [float(r) for r in text.split(",") if r.strip()]
    except ValueError:
        fail(f"--ratios: comma-separated numbers in (0, 1) expected, got {text!r}")


def slim(
    study: str = typer.Option(..., "--study", help="Study name."),
    storage: str | None = typer.Option(None, help="Storage URL (default sqlite:///normnas.db)."),
    ratios: str = typer.Option(
        "0.3,0.5,0.7", "--ratios", help="Shares of the channels to remove, comma-separated."
    ),
    sparsity: float = typer.Option(
        1e-4, "--sparsity", help="L1 penalty on the BatchNorm scales during training (0: none)."
    ),
    epochs: int | None = typer.Option(
        None, "--epochs", help="Epochs of the sparsity training (default: the study's)."
    ),
    finetune_epochs: int | None = typer.Option(
        None, "--finetune-epochs", help="Epochs of fine-tuning after pruning (default epochs/4)."
    ),
    criterion: str = typer.Option(
        "bn", "--criterion", help="bn (|γ|), l1 (filter L1 norm) or random; or several: bn,l1."
    ),
    start: str = typer.Option(
        "retrain",
        "--from",
        help="retrain (from scratch with the penalty) or final (fine-tune the saved model).",
    ),
    min_channels: int | None = typer.Option(
        None,
        "--min-channels",
        help="Keep this many channels in a layer the ratio would empty (default: refuse).",
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Folder of the results and checkpoints (default NAME.slim/)."
    ),
    data: str | None = typer.Option(None, "--data", help="Where the study's data is now."),
    data_root: str | None = typer.Option(None, "--data-root", help="Folder of data sets."),
    device: str | None = typer.Option(None, "--device", help="cpu or cuda (default: the study's)."),
) -> None:
    """Slim the study's best network: train with an L1 penalty on the BatchNorm scales, prune
    the channels with the smallest |γ| at each ratio, fine-tune, and measure each."""
    import optuna

    from normnas.slim.run import slim as run

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    outcome = run(
        study, storage, _ratios(ratios), sparsity, epochs, criterion, out, finetune_epochs,
        start, min_channels, data, data_root, device,
    )  # fmt: skip
    base = outcome.unpruned
    typer.echo(
        f"{'criterion':<9} {'ratio':>5} {'params':>9} {'FLOPs':>11} {'latency':>9} "
        f"{'speedup':>7} {'valid':>7} {'test':>7}"
    )
    typer.echo(
        f"{'none':<9} {0:>5.2f} {base['params']:>9,} {base['flops']:>11,} {'':>9} {'':>7} "
        f"{_pct(base['valid_accuracy']):>7} {_pct(base['test_accuracy']):>7}"
    )
    for r in outcome.rows:
        typer.echo(
            f"{r['criterion']:<9} {r['ratio']:>5.2f} {r['params']:>9,} {r['flops']:>11,} "
            f"{r['latency_ms']:>7.3f}ms {r['speedup']:>6.2f}x {_pct(r['valid_accuracy']):>7} "
            f"{_pct(r['test_accuracy']):>7}"
        )
    for note in outcome.notes:
        typer.echo(f"note: {note}", err=True)
    typer.echo(f"results {outcome.folder / 'results.json'}")
    if outcome.rows:
        mid = min(outcome.rows, key=lambda r: abs(r["ratio"] - 0.5))
        typer.echo(
            f"next    normnas export --checkpoint {outcome.folder / mid['checkpoint']} "
            f"--out model.onnx --format onnx | normnas report --study {study}"
        )


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def register(app: typer.Typer) -> None:
    app.command("slim")(reported(slim))
