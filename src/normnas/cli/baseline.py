"""`normnas baseline --data ucr:NAME`: MiniRocket's test accuracy on the same split as a search."""

from __future__ import annotations

from typing import Any

import typer

from normnas.cli.errors import reported


def baseline(
    data: str = typer.Option(..., help="A bundled UCR/UEA data set: ucr:NAME (e.g. ucr:GunPoint)."),
    seed: int = typer.Option(0, help="Seed of MiniRocket's random kernels."),
) -> None:
    """Train aeon's MiniRocket on the official train split and print its test accuracy: the
    non-neural reference a search of --space seq is read against."""
    from normnas.errors import DataError

    if not data.lower().startswith("ucr:"):
        raise DataError(f"--data {data}: the baseline is defined for ucr:NAME data sets")
    from normnas.train.minirocket import minirocket_baseline

    typer.echo(minirocket_baseline(data, seed).line())


BASELINE_ATTR = "baseline_minirocket"  # study user attribute: kept, so a resume reuses it


def baseline_after_search(outcome: Any, cfg: Any) -> None:
    """After a search of `ucr:` data with a final model: MiniRocket's test accuracy on the
    same split, beside the found network's (always, automatically; computed once per study
    and kept in it). Runs after the search, so it is outside --time. Never fails a search:
    a baseline that cannot run is a warning line."""
    data = str(getattr(cfg, "data", ""))
    if not data.lower().startswith("ucr:") or getattr(outcome, "test_accuracy", None) is None:
        return
    from normnas.errors import one_line

    study = outcome.study
    stored = study.user_attrs.get(BASELINE_ATTR)
    try:
        if stored is None or stored.get("seed") != cfg.seed:
            from normnas.train.minirocket import minirocket_baseline

            result = minirocket_baseline(data, cfg.seed)
            stored = {"seed": cfg.seed, "test_accuracy": result.test_accuracy,
                      "fit_s": result.fit_s, "line": result.line()}  # fmt: skip
            study.set_user_attr(BASELINE_ATTR, stored)
    except Exception as e:  # the search's results stand either way
        typer.echo(f"warning: the MiniRocket baseline did not run: {one_line(e)}", err=True)
        return
    found, ref = float(outcome.test_accuracy), float(stored["test_accuracy"])
    verdict = "at or above" if found >= ref else "below"
    typer.echo(
        f"baseline {stored['line']}; the found network's {100 * found:.2f}% is {verdict} it "
        f"({100 * (found - ref):+.2f} points)"
    )


def register(app: typer.Typer) -> None:
    app.command("baseline")(reported(baseline))
