"""train -> save -> load -> evaluate -> predict -> score, for every baseline, on tiny real models.

The tiny datasets are learnable (the relation follows the verb, the entity type the name), so a
working pipeline reaches a high dev F1 in a few seconds: the test fails if any link is broken.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import mmie
from conftest import write_splits
from mmie.cli import main
from mmie.data import read_dataset
from mmie.errors import ConfigError
from mmie.evaluation.predictions import read_predictions
from mmie.training import train

BASELINES = [("ner", "bert_softmax"), ("ner", "bert_crf"), ("re", "bert_cls"), ("re", "mtb"), ("re", "mtb_levitated")]
SIZES = {"train": 48, "dev": 16, "test": 16}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict[str, dict[str, Path]]:
    root = tmp_path_factory.mktemp("tiny-data")
    return {task: write_splits(root / task, task, SIZES) for task in ("ner", "re")}


def tiny_config(task: str, model: str, encoder: str, paths: dict[str, Path], **training) -> dict:
    return {
        "task": task,
        "model": {"name": model, "encoder": encoder, "max_length": 32},
        "data": {split: str(path) for split, path in paths.items()},
        "training": {
            "epochs": 8,
            "batch_size": 8,
            "learning_rate": 3e-3,
            "head_learning_rate": 1e-2,
            "warmup_ratio": 0.0,
            "logging_steps": 5,
            **training,
        },
    }


@pytest.mark.slow
@pytest.mark.parametrize(("task", "model"), BASELINES)
def test_round_trip(task, model, tiny_bert, datasets, tmp_path, capsys):
    paths = datasets[task]
    report_to = ["tensorboard"] if model == "bert_softmax" else None
    result = train(tiny_config(task, model, tiny_bert, paths), output_dir=tmp_path / "run", report_to=report_to)
    run = result.run_dir

    # the run folder
    assert {"config.yaml", "metrics.json", "train.log", "summary.json", "model"} <= {p.name for p in run.iterdir()}
    assert not (run / "checkpoints").exists()  # removed after a finished run
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) == {"dev", "test", "data"} and metrics == result.metrics
    assert metrics["data"]["train"]["sha256"] and (run / "predictions" / "test.jsonl").is_file()
    assert metrics["dev"]["f1"] >= 0.9, metrics["dev"]  # it learnt
    assert set(metrics["test"]["by_images"]) >= {"1", "2", "3", "4", "single", "multi"}
    assert "per_type" in metrics["test"] if task == "ner" else "per_relation" in metrics["test"]
    log = (run / "train.log").read_text()
    assert '"eval_f1"' in log and "test: f1" in log
    model_files = {p.name for p in result.model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= model_files
    assert not [name for name in model_files if name.endswith((".bin", ".pt", ".pth", ".pkl"))]
    if report_to:
        assert list((run / "tensorboard").glob("events.out.tfevents.*"))

    # load -> evaluate: the same numbers as the run
    test_records = read_dataset(paths["test"]).records
    loaded = mmie.load_model(result.model_dir)
    assert loaded.evaluate(test_records) == metrics["test"]

    # CLI: evaluate --json, predict, then score the prediction file
    capsys.readouterr()
    main(["evaluate", str(result.model_dir), str(paths["test"]), "--json"])
    assert json.loads(capsys.readouterr().out) == metrics["test"]
    predictions = tmp_path / "pred.jsonl"
    main(["predict", str(result.model_dir), str(paths["test"]), "--out", str(predictions)])
    lines = read_predictions(predictions)
    assert [line["id"] for line in lines] == [record.id for record in test_records]
    assert lines == loaded.predict(test_records)
    capsys.readouterr()
    main(["score", str(paths["test"]), str(predictions), "--json"])
    scored = json.loads(capsys.readouterr().out)
    assert scored["f1"] == metrics["test"]["f1"]


@pytest.mark.slow
def test_same_seed_same_metrics_and_weights(tiny_bert, datasets, tmp_path):
    config = tiny_config("ner", "bert_crf", tiny_bert, datasets["ner"], epochs=2)
    first = train(config, output_dir=tmp_path / "first")
    second = train(config, output_dir=tmp_path / "second")
    other = train(config, output_dir=tmp_path / "other", overrides=["training.seed=7"])
    assert first.metrics == second.metrics
    weights = [load_file(run.model_dir / "model.safetensors") for run in (first, second, other)]
    assert all((weights[0][key] == weights[1][key]).all() for key in weights[0])
    assert any((weights[0][key] != weights[2][key]).any() for key in weights[0])


def test_interrupted_prediction_file_is_resumed(tiny_bert, datasets, tmp_path):
    from mmie.encoders.text import load_tokenizer
    from mmie.inference.saving import save_model_folder
    from mmie.models import create_model
    from mmie.training.engine import label_set

    records = read_dataset(datasets["ner"]["test"]).records
    labels = label_set("ner", records)
    tokenizer = load_tokenizer(tiny_bert)
    folder = save_model_folder(
        create_model({"name": "bert_crf", "encoder": tiny_bert}, labels), tokenizer, tmp_path / "m"
    )
    complete, partial = tmp_path / "complete.jsonl", tmp_path / "partial.jsonl"
    main(["predict", str(folder), str(datasets["ner"]["test"]), "--out", str(complete)])
    text = complete.read_text()
    cut = len("".join(text.splitlines(keepends=True)[:5])) + 10  # 5 lines and a torn sixth
    partial.write_text(text[:cut])
    main(["predict", str(folder), str(datasets["ner"]["test"]), "--out", str(partial), "--batch-size", "3"])
    assert partial.read_text() == text


def test_run_folder_and_data_errors(tiny_bert, datasets, tmp_path):
    config = tiny_config("ner", "bert_crf", tiny_bert, datasets["ner"])
    wrong_task = {**config, "data": {"train": str(datasets["re"]["train"])}}
    with pytest.raises(ConfigError, match="data.train: .* is a re dataset but the task is ner"):
        train(wrong_task, output_dir=tmp_path / "wrong")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        train(config, output_dir=tmp_path / "busy")
    with pytest.raises(ConfigError, match="not a run folder"):
        train(config, output_dir=tmp_path / "busy", overwrite=True)
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"
    with pytest.raises(ConfigError, match="no run to resume"):
        train(config, output_dir=tmp_path / "nothing", resume=True)


@pytest.mark.slow
def test_length_grouped_batches_keep_dev_scoring_aligned(tiny_bert, datasets, tmp_path):
    # Training batches are grouped by length; dev scoring must still pair each prediction with
    # its own post, so the engine's dev metrics equal a fresh evaluation of the saved model.
    config = tiny_config("ner", "bert_crf", tiny_bert, datasets["ner"], group_by_length=True)
    result = train(config, output_dir=tmp_path / "grouped")
    dev = read_dataset(datasets["ner"]["dev"]).records
    assert result.metrics["dev"]["f1"] > 0.5
    assert mmie.load_model(result.model_dir).evaluate(dev)["f1"] == pytest.approx(result.metrics["dev"]["f1"])


def test_inner_evaluation_points_are_evenly_spaced_inside_the_epoch():
    from mmie.training.callbacks import EvaluateWithinEpochCallback

    assert EvaluateWithinEpochCallback(4).inner_points(10) == {2, 5, 8}  # the 4th is the epoch's end
    assert EvaluateWithinEpochCallback(2).inner_points(7) == {4}
    assert EvaluateWithinEpochCallback(20).inner_points(5) == {1, 2, 3, 4}  # at most every step


def test_evaluations_within_epochs_select_among_all_and_leave_training_alone(tiny_bert, datasets, tmp_path):
    config = tiny_config("re", "mtb", tiny_bert, datasets["re"], epochs=2)  # 48 posts / 8: 6 steps per epoch
    per_epoch = train(config, output_dir=tmp_path / "per-epoch")
    thrice = train(config, output_dir=tmp_path / "thrice", overrides=["training.evals_per_epoch=3"])

    history = thrice.summary["dev_history"]
    assert [entry["step"] for entry in history] == [2, 4, 6, 8, 10, 12]
    assert [entry["epoch"] for entry in history] == pytest.approx([1 / 3, 2 / 3, 1, 4 / 3, 5 / 3, 2], abs=1e-3)
    # an evaluation only reads the weights: the epoch ends score as in a run that evaluates once per epoch
    assert [entry["f1"] for entry in history[2::3]] == [entry["f1"] for entry in per_epoch.summary["dev_history"]]
    best = max(history, key=lambda entry: entry["f1"])  # the first of equal bests, as the Trainer keeps it
    assert thrice.summary["best_step"] == best["step"]
    assert thrice.metrics["dev"]["f1"] == pytest.approx(best["f1"])
    assert len(thrice.summary["epoch_seconds"]) == 2


def test_bf16_trains_on_the_cpu_and_fp16_there_is_refused_by_name(tiny_bert, datasets, tmp_path, capfd):
    # bf16 on the CPU is autocast: with device auto and no GPU the Trainer needs use_cpu for it, or
    # it refuses with a trace ("Your setup doesn't support bf16/gpu").
    config = tmp_path / "bf16.json"  # JSON is YAML
    config.write_text(json.dumps(tiny_config("re", "mtb", tiny_bert, datasets["re"], epochs=2, mixed_precision="bf16")))
    main(["train", str(config), "--output-dir", str(tmp_path / "bf16")])
    weights = load_file(tmp_path / "bf16" / "model" / "model.safetensors")
    assert {tensor.dtype for tensor in weights.values()} == {torch.float32}  # master weights stay fp32
    assert 0.0 <= json.loads((tmp_path / "bf16" / "metrics.json").read_text())["dev"]["f1"] <= 1.0
    # Without bf16 instructions (torch's own check) the autocast is emulated, many times slower: the
    # command says so in one line, as it gives its errors.
    stderr = capfd.readouterr().err
    emulated = not torch.cuda.is_available() and not torch.ops.mkldnn._is_mkldnn_bf16_supported()
    said = [line for line in stderr.splitlines() if "bf16 on a CPU without bf16 instructions" in line]
    assert len(said) == int(emulated)
    assert all(line.startswith("warning: training.mixed_precision: bf16") for line in said)
    assert "engine.py" not in stderr and "RuntimeWarning" not in stderr
    fp16 = tiny_config("re", "mtb", tiny_bert, datasets["re"], epochs=1, mixed_precision="fp16", device="cpu")
    with pytest.raises(ConfigError, match="training.mixed_precision: fp16 needs a CUDA GPU"):
        train(fp16, output_dir=tmp_path / "fp16")
    assert not (tmp_path / "fp16" / "model").exists()


def test_off_a_terminal_training_writes_one_line_per_evaluation(tiny_bert, datasets, tmp_path, capfd):
    # In a log file or CI, tqdm's dev bar below the train bar (drawn by moving the cursor down, then
    # up) turns each redraw into new lines: off a terminal only the "epoch N: dev ..." lines are written.
    train(tiny_config("ner", "bert_crf", tiny_bert, datasets["ner"], epochs=2), output_dir=tmp_path / "run")
    err = capfd.readouterr().err
    assert "\x1b[A" not in err
    assert [line.split(":")[0] for line in err.splitlines() if ": dev " in line] == ["epoch 1", "epoch 2"]


def test_on_a_terminal_the_dev_bar_is_drawn(tmp_path):
    import fcntl
    import os
    import pty
    import struct
    import termios

    from torch.utils.data import DataLoader
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from mmie.training.callbacks import ExamplesProgressCallback

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # tqdm fits the bar to it
    with os.fdopen(follower, "w") as terminal:
        callback = ExamplesProgressCallback(8, stream=terminal)
        assert callback.on_terminal
        args = TrainingArguments(output_dir=str(tmp_path), per_device_eval_batch_size=4, use_cpu=True)
        for _ in range(2):
            callback.on_prediction_step(args, TrainerState(), TrainerControl(), eval_dataloader=DataLoader(range(8)))
        callback.on_evaluate(args, TrainerState(epoch=1.0), TrainerControl(), metrics={"eval_f1": 0.5})
    raw = b""
    while True:  # the terminal's writer is closed: read until the pty says so (EIO), not one chunk
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        raw += chunk
    os.close(leader)
    drawn = raw.decode()
    assert "dev:   0%" in drawn and "0/8" in drawn and "epoch 1: dev f1 0.5000" in drawn
    with open(os.devnull, "w") as nowhere:
        assert not ExamplesProgressCallback(8, stream=nowhere).on_terminal
