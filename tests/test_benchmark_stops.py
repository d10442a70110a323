"""A benchmark stopped by Ctrl-C or SIGTERM: the run is kept, with what it had reached, and the script
ends with exit status 130, not a traceback."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest

from conftest import write_splits
from mmie.training import train

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import _results  # noqa: E402
import text_baselines  # noqa: E402


def test_a_stopped_script_ends_with_status_130_and_its_run_kept(tmp_path, monkeypatch, capsys):
    out = tmp_path / "synth_probe.json"
    monkeypatch.setattr(sys, "argv", [str(ROOT / "benchmarks" / "synth_probe.py"), "--posts", "12"])

    def main() -> None:
        with _results.recorded_run(out, {"posts": 12}) as run:
            run["results"]["what"] = "probe"
            os.kill(os.getpid(), signal.SIGTERM)  # as `kill` or a job scheduler stops it

    with pytest.raises(SystemExit) as stop:
        _results.run_main(main)
    assert stop.value.code == 130
    assert "stopped: appended to" in capsys.readouterr().out
    (run,) = json.loads(out.read_text())["runs"]
    assert run["status"] == "stopped" and run["results"] == {"what": "probe"}


def test_the_dev_f1_a_stopped_training_reached_is_read_from_its_newest_checkpoint(tiny_bert, tmp_path):
    data = write_splits(tmp_path / "re", "re", {"train": 48, "dev": 16})
    config = {
        "task": "re",
        "model": {"name": "mtb", "encoder": tiny_bert, "max_length": 32},
        "data": {split: str(path) for split, path in data.items()},
        "training": {"epochs": 2, "batch_size": 8, "learning_rate": 3e-3, "evals_per_epoch": 2},
    }
    assert text_baselines.evaluations_so_far(tmp_path / "run_mtb") == {}  # stopped before any evaluation
    result = train(config, output_dir=tmp_path / "run_mtb", overrides=["training.keep_checkpoints=true"])

    so_far = text_baselines.evaluations_so_far(tmp_path / "run_mtb")
    history = result.summary["dev_history"]  # 48 posts / 8: evaluations at steps 3, 6, 9 and 12
    assert list(so_far) == ["0.5", "1.0", "1.5", "2.0"]
    assert list(so_far.values()) == [round(100 * entry["f1"], 2) for entry in history]
