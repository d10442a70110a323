"""mmie sweep with tiny models: the grid, skipping finished runs, going on past a failed one."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from conftest import write_splits
from mmie.cli import main
from mmie.errors import ConfigError
from mmie.training.sweep import expand, is_finished, load_sweep, run_sweep


def _config(tmp_path: Path, name: str, model: str, tiny_bert: str, paths: dict) -> Path:
    config = {
        "task": "re",
        "model": {"name": model, "encoder": tiny_bert, "max_length": 32},
        "data": {split: str(path) for split, path in paths.items()},
        "training": {"epochs": 1, "batch_size": 8, "learning_rate": 3e-3, "warmup_ratio": 0.0, "device": "cpu"},
    }
    path = tmp_path / "configs" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow
def test_sweep_skips_finished_and_survives_failures(tiny_bert, tmp_path, capsys):
    paths = write_splits(tmp_path / "data", "re", {"train": 16, "dev": 8, "test": 8})
    good = _config(tmp_path, "mtb", "mtb", tiny_bert, paths)
    broken = _config(tmp_path, "broken", "bert_cls", tiny_bert, {**paths, "train": tmp_path / "missing.txt"})
    sweep_file = tmp_path / "table.yaml"
    sweep_file.write_text(
        yaml.safe_dump(
            {
                "name": "tiny_table",
                "seeds": [1, 2],
                "reference": "MTB",
                "models": {"MTB": str(good), "Broken": str(broken)},
                "datasets": {"tiny": []},
                "overrides": ["training.logging_steps=1"],
            }
        )
    )
    out = tmp_path / "runs"

    with pytest.raises(SystemExit) as exit_info:  # a failed run: non-zero exit, after the others ran
        main(["sweep", str(sweep_file), "--output-dir", str(out)])
    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    assert "2 trained, 0 already finished, 2 failed" in captured.out
    assert captured.err.count("failed: ") == 2 and "missing.txt" in captured.err
    finished = out / "MTB__tiny__seed1"
    assert is_finished(finished) and is_finished(out / "MTB__tiny__seed2")
    assert (finished / "predictions" / "test.jsonl").is_file()
    info = json.loads((finished / "sweep_run.json").read_text())
    assert info == {**info, "row": "MTB", "dataset": "tiny", "seed": 1, "reference": "MTB"}
    assert yaml.safe_load((finished / "config.yaml").read_text())["training"]["seed"] == 1
    error_log = (out / "Broken__tiny__seed1" / "error.log").read_text()
    assert "missing.txt" in error_log and "Traceback" in error_log
    assert not is_finished(out / "Broken__tiny__seed1")

    # rerun: the finished runs are skipped (untouched), the failed ones are tried again
    stamp = (finished / "metrics.json").stat().st_mtime_ns
    broken.write_text(
        yaml.safe_dump({**yaml.safe_load(broken.read_text()), "data": {k: str(v) for k, v in paths.items()}})
    )
    _, runs, outcome = run_sweep(sweep_file, out)
    assert [r.run_dir.name for r in outcome.skipped] == ["MTB__tiny__seed1", "MTB__tiny__seed2"]
    assert [r.run_dir.name for r in outcome.finished] == ["Broken__tiny__seed1", "Broken__tiny__seed2"]
    assert not outcome.failed and (finished / "metrics.json").stat().st_mtime_ns == stamp
    assert not (out / "Broken__tiny__seed1" / "error.log").exists()

    main(["report", str(out), "--out", str(tmp_path / "report"), "--trials", "200"])
    table = capsys.readouterr().out
    assert "| MTB |" in table and "| Broken |" in table and "tiny F1" in table
    assert (tmp_path / "report" / "main.tex").is_file() and (tmp_path / "report" / "by_images_tiny.png").is_file()


def test_sweep_grid_and_dry_run(tiny_bert, tmp_path, capsys):
    paths = write_splits(tmp_path / "data", "re", {"train": 8, "dev": 4})
    config = _config(tmp_path, "mtb", "mtb", tiny_bert, paths)
    sweep_file = tmp_path / "grid.yaml"
    sweep_file.write_text(
        yaml.safe_dump(
            {
                "name": "grid",
                "seeds": [7],
                "models": {"MTB": str(config)},
                "grid": {"training.learning_rate": [1e-3, 2e-3], "training.batch_size": [4, 8]},
            },
            sort_keys=False,
        )
    )
    runs = expand(load_sweep(sweep_file), sweep_file, tmp_path / "o")
    assert [r.run_dir.name for r in runs] == [
        "MTB__training.learning_rate=0.001,training.batch_size=4__seed7",
        "MTB__training.learning_rate=0.001,training.batch_size=8__seed7",
        "MTB__training.learning_rate=0.002,training.batch_size=4__seed7",
        "MTB__training.learning_rate=0.002,training.batch_size=8__seed7",
    ]
    assert runs[1].overrides == ["training.learning_rate=0.001", "training.batch_size=8", "training.seed=7"]
    main(["sweep", str(sweep_file), "--output-dir", str(tmp_path / "o"), "--dry-run", "--set", "training.epochs=2"])
    printed = capsys.readouterr().out
    assert "4 runs in sweep grid" in printed and printed.count("to run") == 4 and "training.epochs=2" in printed
    assert not (tmp_path / "o").exists()

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"name": "b", "models": {"MTB": str(config)}, "reference": "GLRA"}))
    with pytest.raises(ConfigError, match="reference: 'GLRA' is not one of the models"):
        load_sweep(bad)
    bad.write_text(yaml.safe_dump({"name": "b", "models": {"MTB": str(config)}, "sedes": [1]}))
    with pytest.raises(ConfigError, match="sedes: unknown key"):
        load_sweep(bad)
    bad.write_text(yaml.safe_dump({"name": "b", "models": {"MTB": "configs/nope.yaml"}}))
    with pytest.raises(ConfigError, match="nope.yaml: no such config file"):
        run_sweep(bad, tmp_path / "o", dry_run=True)


def test_every_table_sweep_expands_to_valid_configs():
    """configs/tables/*.yaml: every run's config (sweep overrides and seed applied) validates."""
    from mmie.training.config import load_config

    tables = sorted((Path(__file__).resolve().parents[1] / "configs" / "tables").glob("*.yaml"))
    assert len(tables) >= 9
    for sweep_file in tables:
        sweep = load_sweep(sweep_file)
        runs = expand(sweep, sweep_file, Path("runs") / sweep.name)
        grid_points = math.prod(len(values) for values in sweep.grid.values())  # 1 without a grid
        assert len(runs) == len(sweep.models) * max(1, len(sweep.datasets)) * grid_points * len(sweep.seeds)
        for run in runs:
            assert load_config(run.config, run.overrides).training.seed == run.seed
