"""A real interruption: SIGKILL `mmie train` after its first checkpoint, then `--resume`.

The resumed run must end with exactly the scores (and weights) of an uninterrupted run with the
same seed, and must ignore a checkpoint whose save was cut off (no trainer_state.json).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml
from safetensors.torch import load_file

from conftest import write_splits
from mmie.cli import main
from mmie.training import train


def mmie_command(*args: str) -> list[str]:
    return [sys.executable, "-c", "from mmie.cli import main; main()", *args]


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_metrics(tiny_bert, tmp_path):
    paths = write_splits(tmp_path / "data", "ner", {"train": 96, "dev": 16, "test": 16})
    config = tmp_path / "tiny_crf.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "task": "ner",
                "model": {"name": "bert_crf", "encoder": tiny_bert, "max_length": 32},
                "data": {split: str(path) for split, path in paths.items()},
                "training": {"epochs": 12, "batch_size": 8, "learning_rate": 3e-3, "head_learning_rate": 1e-2},
            }
        )
    )
    # Same thread count in the child as in this process (conftest): the same floating-point sums.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    killed_run = tmp_path / "killed"
    child = subprocess.Popen(
        mmie_command("train", str(config), "--output-dir", str(killed_run)),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    checkpoints = killed_run / "checkpoints"
    deadline = time.monotonic() + 120
    try:
        while not list(checkpoints.glob("checkpoint-*/trainer_state.json")):
            assert child.poll() is None, child.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no checkpoint within 2 minutes"
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=30)
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    assert not (killed_run / "metrics.json").exists()  # it really was interrupted
    complete = max(
        (path.parent for path in checkpoints.glob("checkpoint-*/trainer_state.json")),
        key=lambda path: int(path.name.split("-")[1]),
    )
    epochs_done = int(complete.name.split("-")[1]) // (96 // 8)
    assert epochs_done < 12
    # A save cut off by a kill: the folder exists, trainer_state.json (written last) does not.
    torn = checkpoints / "checkpoint-999"
    shutil.copytree(complete, torn)
    (torn / "trainer_state.json").unlink()

    # The resume runs the same CLI command in this process (one interpreter start less).
    main(["train", str(config), "--output-dir", str(killed_run), "--resume"])
    log = (killed_run / "train.log").read_text()
    assert "removing the incomplete checkpoint" in log and f"resuming from {complete}" in log
    # it continued: only the remaining epochs ran in the resumed process
    assert len(json.loads((killed_run / "summary.json").read_text())["epoch_seconds"]) == 12 - epochs_done

    uninterrupted = train(config, output_dir=tmp_path / "uninterrupted")
    assert json.loads((killed_run / "metrics.json").read_text()) == uninterrupted.metrics
    resumed_weights = load_file(killed_run / "model" / "model.safetensors")
    reference = load_file(uninterrupted.model_dir / "model.safetensors")
    assert all((resumed_weights[key] == reference[key]).all() for key in reference)
