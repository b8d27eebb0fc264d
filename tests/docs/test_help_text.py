"""`--help` at 80 columns: extras in brackets survive, descriptions are not cut to a narrow
column, and `search --help` shows RunConfig's own defaults."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from normnas.cli import app
from normnas.cli.search import SEARCH_DEFAULTS
from normnas.config import RunConfig


def _help(*command: str) -> str:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize(
    ("command", "extras"),
    [(("search",), ["normnas[ray]"]), (("export",), ["normnas[onnx]", "normnas[keras]"])],
)
def test_extras_in_brackets_are_printed(command, extras):
    text = " ".join(_help(*command).split())
    for extra in extras:
        assert extra in text


@pytest.mark.parametrize("command", [("search",), ("export",), ("bench", "nb201"), ("ablate",)])
def test_no_description_is_cut_or_squeezed_at_80_columns(command):
    text = _help(*command)
    assert "…" not in text
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    # the description column is wide: the longest option help line is at least 45 characters
    helps = [m.group(1) for line in lines if (m := re.match(r"^ {2,}\S.* {2,}(\S.*)$", line))]
    assert max(len(h) for h in helps) >= 45


def test_search_help_shows_the_config_defaults():
    text = " ".join(_help("search").split())
    cfg = RunConfig()
    actual = {
        "data": cfg.data,
        "space": cfg.space.name,
        "strategy": cfg.strategy,
        "objective": cfg.objectives[0],
        "epochs": str(cfg.train.epochs),
        "pruner": cfg.pruner,
        "workers": str(cfg.workers),
        "executor": cfg.executor,
        "seed": str(cfg.seed),
        "device": cfg.device,
        "evaluator": cfg.evaluator,
        "bn_mode": cfg.oneshot.bn_mode,
        "calib_batches": str(cfg.oneshot.calib_batches),
        "proxy": ",".join(cfg.proxies),
        "proxy_warmup": str(cfg.proxy_warmup),
        "order": str(cfg.gradient.order),
        "selection": cfg.gradient.selection,
        "verify": "verify" if cfg.verify else "no-verify",
        "final": "final" if cfg.final else "no-final",
        "storage": "sqlite:///normnas.db",  # session's default storage URL
    }
    # a default named in --help is RunConfig's (an option added later may add its own)
    assert {k: SEARCH_DEFAULTS.get(k) for k in actual} == actual
    for name, value in SEARCH_DEFAULTS.items():
        assert f"[default: {value}]" in text, name
