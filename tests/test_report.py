"""mmie report on fixture run folders: tables, significance on known predictions, fingerprints, plots.

The run folders are written the way the engine writes them (metrics.json scored by the real
metrics, predictions/test.jsonl through the real writer, the gold file through the real writer),
with predictions whose quality is known: a row that gets every test example right against a
reference that gets a third wrong must be significant, a row identical to the reference must not.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import make_re_instances
from mmie.cli import main
from mmie.data import read_dataset, write_dataset
from mmie.data.releases import fingerprint
from mmie.evaluation.predictions import re_prediction, score_predictions
from mmie.evaluation.significance import approximate_randomisation, example_counts
from mmie.reporting.report import build_report, write_report
from mmie.training.engine import write_predictions

LABELS = ["None", "/per/loc/place_of_residence", "/per/org/member_of"]
MRE_LABELS_ALL = ["None", "/per/per/couple", "/per/per/peer", "/per/org/member_of"]


@pytest.fixture(scope="module")
def gold(tmp_path_factory) -> tuple[Path, list]:
    instances = make_re_instances(90, seed=3)
    path = tmp_path_factory.mktemp("gold") / "test.txt"
    write_dataset(instances, path, "mremi")
    return path, instances


def _predict(instances, error_rate: float, seed: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for instance in instances:
        label = instance.label
        if rng.random() < error_rate:
            label = rng.choice([other for other in LABELS if other != label])
        out.append(re_prediction(instance, label))
    return out


def make_run(
    folder: Path, row: str, seed: int, gold_path: Path, instances, error_rate: float, train_file: Path | None = None
) -> Path:
    """A run folder as mmie train + mmie sweep leave it."""
    folder.mkdir(parents=True)
    predictions = _predict(instances, error_rate, seed)
    write_predictions(folder / "predictions" / "test.jsonl", predictions)
    metrics = {
        "test": score_predictions(instances, predictions, task="re"),
        "data": {"train": fingerprint(train_file or gold_path), "test": fingerprint(gold_path)},
    }
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "config.yaml").write_text(f"task: re\nname: {row}\ntraining: {{seed: {seed}}}\n")
    info = {"row": row, "dataset": "tiny", "grid": {}, "seed": seed, "reference": "Base"}
    (folder / "sweep_run.json").write_text(json.dumps(info))
    return folder


@pytest.fixture(scope="module")
def sweep_folder(tmp_path_factory, gold) -> Path:
    gold_path, instances = gold
    root = tmp_path_factory.mktemp("sweep")
    for seed in (1, 2):
        make_run(root / f"Base__tiny__seed{seed}", "Base", seed, gold_path, instances, error_rate=0.35)
        make_run(root / f"Better__tiny__seed{seed}", "Better", seed, gold_path, instances, error_rate=0.0)
        # the reference's predictions again: identical rows are never significant
        make_run(root / f"Same__tiny__seed{seed}", "Same", seed, gold_path, instances, error_rate=0.35)
    return root


def test_approximate_randomisation_on_known_counts(gold):
    _, instances = gold
    good = example_counts("re", instances, _predict(instances, 0.0, 1))
    bad = example_counts("re", instances, _predict(instances, 0.4, 1))
    better = approximate_randomisation(good, bad, trials=2000, seed=7)
    assert better["delta"] > 0.2 and better["p_value"] < 0.01
    assert approximate_randomisation(bad, bad, trials=2000, seed=7)["p_value"] == 1.0
    assert approximate_randomisation(bad, good, trials=2000, seed=7)["p_value"] > 0.9  # worse: one-sided
    assert approximate_randomisation(good, bad, trials=2000, seed=7) == better  # seeded: deterministic
    # the counts give exactly the reported micro F1
    scores = score_predictions(instances, _predict(instances, 0.4, 1), task="re")
    correct, predicted, support = bad.sum(axis=0)
    assert (correct, predicted, support) == (scores["correct"], scores["predicted"], scores["support"])


def test_ner_counts_match_entity_f1():
    from conftest import make_ner_posts
    from mmie.evaluation.predictions import ner_prediction

    posts = make_ner_posts(30, seed=5)
    predictions = [ner_prediction(p, ["O"] * len(p.tokens) if i % 3 == 0 else p.tags) for i, p in enumerate(posts)]
    counts = example_counts("ner", posts, predictions)
    scores = score_predictions(posts, predictions, task="ner")
    assert tuple(counts.sum(axis=0)) == (scores["correct"], scores["predicted"], scores["support"])


def test_report_tables_and_daggers(sweep_folder, tmp_path):
    report = build_report([sweep_folder], trials=2000)
    assert report.reference == "Base"  # from sweep_run.json
    tests = {s["row"]: s for s in report.significance}
    assert tests["Better"]["p_value"] < 0.05 and tests["Better"]["n"] == 180  # two seeds pooled
    assert tests["Same"]["p_value"] == 1.0 and tests["Same"]["delta"] == 0.0

    written = write_report(report, tmp_path / "report")
    main_md = (tmp_path / "report" / "main.md").read_text()
    lines = {line.split("|")[1].strip(): line for line in main_md.splitlines() if line.startswith("| ")}
    assert "Base" not in lines  # the reference row is named so in the table
    assert "†" in lines["Better"] and "†" not in lines["Same"] and "†" not in lines["Base (reference)"]
    assert "100.00 ± 0.00†" in lines["Better"]  # F1 of a perfect row, both seeds
    assert "approximate randomisation" in main_md
    base_f1 = [build_report([sweep_folder / f"Base__tiny__seed{s}"]).runs[0].metrics["test"]["f1"] for s in (1, 2)]
    assert f"{100 * np.mean(base_f1):.2f} ± {100 * np.std(base_f1, ddof=1):.2f}" in lines["Base (reference)"]

    tex = (tmp_path / "report" / "main.tex").read_text()
    assert r"\begin{tabular}" in tex and r"$^\dagger$" in tex and r"\multicolumn{4}{c}{tiny}" in tex
    with open(tmp_path / "report" / "main.csv", newline="") as stream:
        rows = {row["Model"]: row for row in csv.DictReader(stream)}
    assert rows["Better"]["tiny F1 significant"] == "yes" and float(rows["Better"]["tiny F1"]) == 100.0
    by_images = (tmp_path / "report" / "by_images.md").read_text()
    assert "tiny single" in by_images and "tiny multi" in by_images and "tiny whole" in by_images
    per_relation = (tmp_path / "report" / "per_label_tiny.md").read_text()
    assert "/per/org/member_of" in per_relation and "None |" not in per_relation
    pngs = [p for p in written if p.suffix == ".png"]
    assert [p.name for p in pngs] == ["by_images_tiny.png"]
    with Image.open(pngs[0]) as image:
        assert image.format == "PNG" and image.size[0] > 300


def test_pairs_test_each_row_against_its_counterpart(sweep_folder, tmp_path, capsys):
    """A sweep's `pairs` (or --pair) test rows against rows other than the reference: here Better
    against Same (a better row: dagger) and Same against Better (worse: none), beside the reference tests."""
    report = build_report([sweep_folder], trials=2000, pairs={"Better": "Same", "Same": "Better"})
    assert {s["row"] for s in report.significance} == {"Better", "Same"}  # against Base, unchanged
    [table] = [t for t in report.tables if t.name == "pairs"]
    by_row = {row[0]: row for row in table.rows}
    assert by_row["Better"][1] == "Same" and by_row["Better"][3].mark == "†" and by_row["Better"][5].startswith("+")
    assert by_row["Same"][1] == "Better" and by_row["Same"][3].mark != "†" and by_row["Same"][5].startswith("-")
    assert float(by_row["Better"][6]) < 0.05
    assert not [t for t in build_report([sweep_folder], trials=500).tables if t.name == "pairs"]  # none asked
    main(["report", str(sweep_folder), "--pair", "Better=Base", "--out", str(tmp_path / "out"), "--trials", "500"])
    assert "Each row against its counterpart" in capsys.readouterr().out
    assert (tmp_path / "out" / "pairs.md").is_file()
    for bad, message in (("Better", "ROW=COUNTERPART"), ("Better=Nope", "no such row")):
        with pytest.raises(SystemExit):
            main(["report", str(sweep_folder), "--pair", bad, "--out", str(tmp_path / "x")])
        assert message in capsys.readouterr().err


def test_a_sweeps_pairs_name_its_rows(tmp_path):
    from mmie.errors import ConfigError
    from mmie.training.sweep import load_sweep

    sweep = {"name": "s", "models": {"A": "a.yaml", "B": "b.yaml"}, "pairs": {"A": "B"}}
    (tmp_path / "ok.yaml").write_text(json.dumps(sweep))
    assert load_sweep(tmp_path / "ok.yaml").pairs == {"A": "B"}
    for pairs, message in (({"A": "C"}, "'C' is not one of the models"), ({"A": "A"}, "paired with itself")):
        (tmp_path / "bad.yaml").write_text(json.dumps({**sweep, "pairs": pairs}))
        with pytest.raises(ConfigError, match=message):
            load_sweep(tmp_path / "bad.yaml")


def test_report_warns_on_mixed_releases(gold, tmp_path):
    gold_path, instances = gold
    other_train = tmp_path / "train_edited.txt"
    write_dataset(instances[:50], other_train, "mremi")
    make_run(tmp_path / "runs" / "a", "Base", 1, gold_path, instances, 0.3)
    make_run(tmp_path / "runs" / "b", "Better", 1, gold_path, instances, 0.0, train_file=other_train)
    report = build_report([tmp_path / "runs"], trials=500)
    assert any("tiny train: the rows used different data files" in w for w in report.warnings), report.warnings
    assert not any("tiny test" in w for w in report.warnings)


def test_report_cli_and_challenge_plot(sweep_folder, tmp_path, capsys):
    challenge = {
        "challenge": "align-noise",
        "seed": 13,
        "model": str(sweep_folder / "Better__tiny__seed1" / "model"),
        "data": "test.txt",
        "results": [{"ratio": r, "metrics": {"f1": 0.9 - r / 2}} for r in (0.0, 0.05, 0.1, 0.2, 0.5, 1.0)],
    }
    path = tmp_path / "challenge.json"
    path.write_text(json.dumps(challenge))
    main(["report", str(sweep_folder), "--out", str(tmp_path / "out"), "--challenge", str(path), "--trials", "500"])
    printed = capsys.readouterr().out
    assert "| Better |" in printed and "†" in printed
    assert (tmp_path / "out" / "challenge_align-noise.png").is_file()
    with pytest.raises(SystemExit):
        main(["report", str(sweep_folder), "--reference", "Nope", "--out", str(tmp_path / "x")])
    assert "no such row" in capsys.readouterr().err


def test_low_resource_plot(gold, tmp_path):
    from mmie.reporting.plots import low_resource_plots

    gold_path, instances = gold
    for fraction in (0.1, 0.5):
        for row, error in (("Base", 0.4), ("Better", 0.1)):
            folder = make_run(tmp_path / f"{row}{fraction}", row, 1, gold_path, instances, error)
            info = json.loads((folder / "sweep_run.json").read_text())
            (folder / "sweep_run.json").write_text(json.dumps({**info, "grid": {"data.sample_fraction": fraction}}))
    report = build_report([tmp_path], trials=200)
    assert {s["grid"]["data.sample_fraction"] for s in report.significance} == {0.1, 0.5}
    assert [p.name for p in low_resource_plots(report.runs, tmp_path / "plots")] == [
        "low_resource_sample_fraction_tiny.png"
    ]


# --- breakdown by deciding setting (synth_meta.jsonl beside the test file) ------------------------


@pytest.fixture(scope="module")
def mechanisms_sweep(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """Run folders on a synthetic MRE test split with the mechanisms mix: "Base" gets every ``order``
    post wrong and every other post right, "Better" gets everything right."""
    from mmie.data.synth import PRESETS, generate_dataset, read_settings

    data = tmp_path_factory.mktemp("mech") / "data"
    generate_dataset("mre", data, 240, seed=2, image_size=64, mix=PRESETS["mechanisms"])
    instances = list(read_dataset(data / "test.txt").records)
    settings = read_settings(data / "synth_meta.jsonl")
    root = tmp_path_factory.mktemp("mech_sweep")
    for seed in (1, 2):
        for row, wrong in (("Base", {"order"}), ("Better", set())):
            predictions = []
            for instance in instances:
                label = instance.label
                if settings[instance.id] in wrong:  # a wrong relation: costs precision and recall
                    label = next(other for other in MRE_LABELS_ALL if other not in (label, "None"))
                predictions.append(re_prediction(instance, label))
            folder = root / f"{row}__mech__seed{seed}"
            folder.mkdir()
            write_predictions(folder / "predictions" / "test.jsonl", predictions)
            metrics = {
                "test": score_predictions(instances, predictions, task="re"),
                "data": {"test": fingerprint(data / "test.txt")},
            }
            (folder / "metrics.json").write_text(json.dumps(metrics))
            (folder / "config.yaml").write_text(f"task: re\nname: {row}\ntraining: {{seed: {seed}}}\n")
            info = {"row": row, "dataset": "mech", "grid": {}, "seed": seed, "reference": "Base"}
            (folder / "sweep_run.json").write_text(json.dumps(info))
    return root, settings


def test_breakdown_by_deciding_setting_from_the_saved_predictions(mechanisms_sweep, tmp_path):
    root, settings = mechanisms_sweep
    report = build_report([root], trials=2000)
    table = next(t for t in report.tables if t.name == "by_setting")
    test_ids = {r.id for r in read_dataset(Path(report.runs[0].metrics["data"]["test"]["path"])).records}
    n_order = sum(settings[i] == "order" for i in test_ids)
    assert n_order >= 5
    assert table.header[0] == "Model" and f"order (n={n_order})" in table.header
    assert [h.split(" (")[0] for h in table.header[1:]] == ["text", "cue", "small_cue", "distractor", "order", "whole"]
    rows = {row[0]: dict(zip(table.header[1:], row[1:])) for row in table.rows}
    order = f"order (n={n_order})"
    assert rows["Base"][order].mean == 0.0 and rows["Better"][order].mean == 1.0
    assert rows["Better"][order].mark == "†"  # better on the order posts, seeds pooled
    for header in table.header[1:-1]:
        if header != order:  # the same predictions elsewhere: equal, never significant
            assert rows["Base"][header].mean == rows["Better"][header].mean == 1.0
            assert rows["Better"][header].mark == ""
    # "whole" is the F1 of metrics.json, recomputed from the predictions
    whole = table.header[-1]
    assert rows["Base"][whole].values == [run.metrics["test"]["f1"] for run in report.runs if run.row == "Base"]
    tests = next(t for t in report.tables if t.name == "significance_by_setting")
    assert any(r[0] == "Better" and r[2] == "order" and float(r[4]) < 0.05 for r in tests.rows)

    write_report(report, tmp_path / "report")
    markdown = (tmp_path / "report" / "by_setting.md").read_text()
    assert "F1 by deciding setting" in markdown and "100.00 ± 0.00†" in markdown


def test_breakdown_by_a_given_file_and_none_without_one(mechanisms_sweep, sweep_folder, tmp_path, capsys):
    root, settings = mechanisms_sweep
    groups = tmp_path / "groups.jsonl"
    groups.write_text(
        "".join(json.dumps({"id": i, "setting": "even" if int(i) % 2 else "odd"}) + "\n" for i in settings)
    )
    main(["report", str(root), "--out", str(tmp_path / "out"), "--trials", "200", "--breakdown-by", str(groups)])
    by_setting = (tmp_path / "out" / "by_setting.md").read_text()
    assert "mech even (n=" in by_setting and "mech odd (n=" in by_setting and "order" not in by_setting
    with pytest.raises(SystemExit):
        main(["report", str(root), "--out", str(tmp_path / "x"), "--breakdown-by", str(tmp_path / "missing.jsonl")])
    assert "missing.jsonl" in capsys.readouterr().err
    # runs on data without a synth_meta.jsonl: no breakdown table
    assert "by_setting" not in {t.name for t in build_report([sweep_folder], trials=200).tables}
