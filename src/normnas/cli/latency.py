"""`normnas latency profile | predict`: latency tables per target runtime. Heavy imports
are lazy."""

from __future__ import annotations

from pathlib import Path

import typer

from normnas.cli.errors import fail, reported

latency_app = typer.Typer(
    help="Latency predicted per target runtime: profile a space's table, predict an arch.",
    no_args_is_help=True,
)

_SPACE = typer.Option(..., "--space", help="nb201 or macro (the default macro space).")
_TARGET = typer.Option("torch", "--target", help="torch, torchscript, onnxruntime or cuda.")
_THREADS = typer.Option(1, "--threads", help="CPU threads of the runtime.")
_BATCH = typer.Option(1, "--batch", help="Batch size.")


_SHAPE = typer.Option(
    "3,32,32", "--input-shape", help="C,H,W of one input (a search's data: digits 1,8,8)."
)
_CLASSES = typer.Option(10, "--classes", help="Classes of the classifier head.")


def _shape(text: str, classes: int) -> tuple[int, int, int]:
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1 or classes < 1:
        fail(f"--input-shape must be C,H,W of positive integers, e.g. 3,32,32, got {text!r}")
    return shape  # type: ignore[return-value]


@latency_app.command("profile")
@reported
def profile_cmd(
    space: str = _SPACE,
    target: str = _TARGET,
    threads: int = _THREADS,
    batch: int = _BATCH,
    out: Path | None = typer.Option(
        None, "--out", help="Table file to write (default: the cache, ~/.cache/normnas/latency)."
    ),
    input_shape: str = _SHAPE,
    classes: int = _CLASSES,
    fit_archs: int = typer.Option(8, "--fit-archs", help="Whole networks timed for the fit."),
    quick: bool = typer.Option(False, "--quick", help="A short protocol (smoke tests only)."),
) -> None:
    """Time every block of the space in context on the target; write the table."""
    from normnas.latency.profile import profile, say, table_key
    from normnas.latency.table import cache_path
    from normnas.latency.targets import Target
    from normnas.search.spaces import make_space

    if fit_archs < 2:
        fail(f"--fit-archs must be >= 2, got {fit_archs}")
    shape = _shape(input_shape, classes)
    tgt = Target(target, threads, batch)
    sp = make_space(space)
    table = profile(sp, tgt, shape, classes, fit_archs=fit_archs, quick=quick, progress=say)
    if table.warning:
        typer.echo(table.warning, err=True)
    path = table.save(out if out is not None else cache_path(table_key(sp, tgt, shape, classes)))
    fit = table.fit
    typer.echo(
        f"latency table  {path}\n"
        f"  {space} on {tgt.label}: {len(table.entries)} entries in {table.profile_s:.1f} s; "
        f"1-min load {table.load.get('load_1min_start')} -> {table.load.get('load_1min_end')}, "
        f"other processes {table.load.get('others_busy_cores')} cores busy\n"
        f"  correction ({fit.get('kind')}): scale {fit.get('scale', 1.0):.3f}, constant "
        f"{fit.get('constant', 0.0):.3f} ms; mean error on {len(fit.get('archs', []))} whole "
        f"networks {100 * min(fit.get('error_constant', 0), fit.get('error_linear', 1)):.1f} %"
    )


@latency_app.command("predict")
@reported
def predict_cmd(
    space: str = _SPACE,
    arch: str = typer.Option(..., "--arch", help="The architecture, as the space writes it."),
    target: str = _TARGET,
    threads: int = _THREADS,
    batch: int = _BATCH,
    table: Path | None = typer.Option(
        None, "--table", help="Table file (default: the cache, then the packaged NB201 one)."
    ),
    measure: bool = typer.Option(False, "--measure", help="Also time the network for real."),
    input_shape: str = _SHAPE,
    classes: int = _CLASSES,
) -> None:
    """Print the predicted latency of one architecture on the target."""
    from normnas.latency.predict import LatencyPredictor
    from normnas.latency.profile import measure_network
    from normnas.latency.resolve import stored_table
    from normnas.latency.targets import Target
    from normnas.search.spaces import make_space

    tgt = Target(target, threads, batch)
    sp = make_space(space)
    shape = _shape(input_shape, classes)
    tab = stored_table(sp, tgt, table, shape, classes)
    a = sp.from_str(arch)
    ms = LatencyPredictor(tab, sp).predict(a)
    line = f"{ms:.3f} ms predicted on {tgt.label}  [{tab.path}]"
    if measure:
        line += f"; {measure_network(sp, a, tgt, shape, classes):.3f} ms measured"
    typer.echo(line)


def register(app: typer.Typer) -> None:
    app.add_typer(latency_app, name="latency")
