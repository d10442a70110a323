"""A real 2-process data-parallel training on CPU (torchrun, gloo) against a 1-process run.

Same global batch (2 x 4 = 8), same seed, same data: the steps are the same, only the order in
which the examples are drawn differs (DistributedSampler), so the scores agree within a tolerance.
Only rank 0 writes the run folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import write_splits
from mmie.training import train

TORCHRUN = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))


@pytest.mark.slow
@pytest.mark.skipif(not Path(TORCHRUN).exists(), reason="torchrun not installed")
def test_two_process_training_matches_one_process(tiny_bert, tmp_path):
    paths = write_splits(tmp_path / "data", "re", {"train": 48, "dev": 16, "test": 16})
    config = {
        "task": "re",
        "model": {"name": "mtb", "encoder": tiny_bert, "max_length": 32},
        "data": {split: str(path) for split, path in paths.items()},
        "training": {
            "epochs": 6,
            "batch_size": 8,
            "learning_rate": 3e-3,
            "head_learning_rate": 1e-2,
            "warmup_ratio": 0.0,
            "logging_steps": 2,
            "device": "cpu",
        },
    }
    config_file = tmp_path / "tiny.yaml"
    config_file.write_text(yaml.safe_dump(config))
    single = train(config_file, output_dir=tmp_path / "one")

    src = Path(__file__).resolve().parents[1] / "src"
    env = {
        **os.environ,
        "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
    }
    command = [
        TORCHRUN,
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "mmie.cli",
        "train",
        str(config_file),
        "--output-dir",
        str(tmp_path / "two"),
        "--set",
        "training.batch_size=4",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]

    two = tmp_path / "two"
    summary = json.loads((two / "summary.json").read_text())
    assert summary["world_size"] == 2 and single.summary["world_size"] == 1
    assert summary["global_step"] == single.summary["global_step"]  # equal global batch: equal steps
    metrics = json.loads((two / "metrics.json").read_text())
    # 16 examples per split: one example is 0.0625 of accuracy and ~0.17 of the test F1 (6 related pairs)
    assert abs(metrics["dev"]["f1"] - single.metrics["dev"]["f1"]) <= 0.1, (metrics["dev"], single.metrics["dev"])
    for split in ("dev", "test"):
        assert abs(metrics[split]["accuracy"] - single.metrics[split]["accuracy"]) <= 0.13, split
    assert metrics["data"] == single.metrics["data"]
    # rank 0 alone wrote the folder: no leftovers of a second writer, no staging files
    assert sorted(p.name for p in two.iterdir()) == [
        "config.yaml",
        "metrics.json",
        "model",
        "predictions",
        "summary.json",
        "train.log",
    ]
    assert sorted(p.name for p in (two / "predictions").iterdir()) == ["dev.jsonl", "test.jsonl"]
