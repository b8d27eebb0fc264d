"""`--evaluator proxy` and `--proxy-warmup` end to end from the CLI on digits."""

from pathlib import Path

import optuna
from tests import support

from normnas.search import records as rec
from normnas.search.study import open_storage

CONFIG = support.TINY


def _study(cwd: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(f"sqlite:///{cwd}/normnas.db"))


def test_search_judged_by_proxies_alone(tmp_path):
    (tmp_path / "c.yaml").write_text(CONFIG)
    args = ["search", "-c", "c.yaml", "--evaluator", "proxy", "--proxy", "synflow,naswot"]
    result = support.invoke([*args, "--trials", "5", "--study", "p", "--no-final"], tmp_path)
    assert result.exit_code == 0, result.output
    done = [r for r in rec.records(_study(tmp_path, "p")) if r.evaluated]
    assert len(done) == 5 and all(r.status == "ok" for r in done)
    assert {r.result["extra"]["accuracy_is"] for r in done} == {"proxy_z_sum:synflow,naswot"}
    assert all(r.result["cost_s"] > 0 for r in done)


def test_unknown_proxy_is_one_line(tmp_path):
    (tmp_path / "c.yaml").write_text(CONFIG)
    result = support.invoke(["search", "-c", "c.yaml", "--proxy", "magic"], tmp_path)
    assert result.exit_code == 2
    assert result.output.startswith("error: --proxy") and "magic" in result.output


def test_proxy_warmup_starts_the_search_from_the_best_scored(tmp_path):
    (tmp_path / "c.yaml").write_text(CONFIG)  # evolution, population 3
    args = ["search", "-c", "c.yaml", "--proxy-warmup", "8", "--proxy", "synflow"]
    result = support.invoke([*args, "--trials", "4", "--study", "w", "--no-final"], tmp_path)
    assert result.exit_code == 0, result.output
    assert "proxy warm-up: 8 architectures" in " ".join(result.output.split())
    study = _study(tmp_path, "w")
    first = sorted(study.trials, key=lambda t: t.number)[:3]
    scores = [t.user_attrs["proxy_warmup_score"] for t in first]
    assert scores == sorted(scores, reverse=True)  # the population starts from the best three
    assert study.user_attrs["proxy_warmup_s"] > 0
    rerun = support.invoke([*args, "--trials", "5", "--study", "w", "--no-final"], tmp_path)
    assert rerun.exit_code == 0 and "proxy warm-up" not in rerun.output  # once per study
