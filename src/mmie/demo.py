"""``make demo``: the main job, end to end on SYNTHETIC data with the offline encoders.

1. Generate the synthetic MNER and MRE samples (``mmie data synth``) and print their statistics.
2. Train every demo row (text-only baselines first, then the image models) with the configs in
   ``configs/synthetic/`` and print one table per task with dev and test scores.
   Then train three MNER rows (stitched, prefix over all images without temporal encoding, TPM-MI)
   on the ``mechanisms`` preset (posts decided by a small cue, by the image the text names among
   distractors, or by the order of two cues; docs/synthetic.md) and print their test F1 by the
   setting that decides each post.
3. Extract from one synthetic test post with the trained TPM-MI (NER) and GLRA (RE) through
   :class:`mmie.Extractor` (raw text + image bytes, as a user would), print its entities and
   relations (the whole answer goes to ``extraction.json``), and say how to start the service on
   those models.

The synthetic sample exists to show that the image pathways learn (its labels often depend on one
image that is not the first); its scores say nothing about accuracy on real posts.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from mmie.data import read_dataset
from mmie.data.stats import dataset_stats
from mmie.data.synth import META_FILE, PRESETS, SETTINGS, generate_dataset, read_settings
from mmie.io import write_atomic

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIGS = REPO_ROOT / "configs" / "synthetic"


@dataclass(frozen=True)
class DemoRow:
    task: str  # "mner" or "mre": the synthetic sample it trains on
    label: str  # the row name in the printed table
    config: str  # file name in configs/synthetic/


# One row per model of the papers' comparisons (MNER-MI Table 3, MRE-MI Table 2), in table order.
ROWS = (
    DemoRow("mner", "BERT-CRF (text only)", "bert_crf.yaml"),
    DemoRow("mner", "BERT-CRF + first image", "bert_crf_first_image.yaml"),
    DemoRow("mner", "BERT-CRF + stitched images (-MI)", "bert_crf_stitched.yaml"),
    DemoRow("mner", "TPM-MI (all images)", "tpm_mi.yaml"),
    DemoRow("mre", "MTB (text only)", "mtb.yaml"),
    DemoRow("mre", "MTB + first image", "mtb_first_image.yaml"),
    DemoRow("mre", "MTB + all images", "mtb_all_images.yaml"),
    DemoRow("mre", "GLRA (all images)", "glra.yaml"),
)
# The mechanism table: MNER rows on the mechanisms preset, one per way of reading several images
# (stitched into one frame, a set of per-image tokens, an ordered sequence).
MECHANISM_ROWS = (
    DemoRow("mner_mech", "BERT-CRF + stitched images (-MI)", "bert_crf_stitched.yaml"),
    DemoRow("mner_mech", "Prefix, all images (no temporal)", "prefix_all_images.yaml"),
    DemoRow("mner_mech", "TPM-MI (all images)", "tpm_mi.yaml"),
)


def _synthesize(out: Path, posts: int, seed: int) -> dict[str, Path]:
    folders = {}
    for key, task, folder, preset in (
        ("mner", "mner", out / "synth_mner", "default"),
        ("mre", "mre", out / "synth_mre", "default"),
        ("mner_mech", "mner", out / "synth_mech_mner", "mechanisms"),
    ):
        if not (folder / "train.txt").exists():
            generate_dataset(task, folder, posts, seed, overwrite=True, mix=PRESETS[preset])
        folders[key] = folder
        stats = dataset_stats(read_dataset(folder / "train.txt"))
        label = task if preset == "default" else f"{task} {preset}-preset"
        print(f"\n== synthetic {label} sample (train split): {folder}")
        print(json.dumps(_stats_digest(stats), indent=None))
    return folders


def _stats_digest(stats: dict) -> dict:
    keep = ("posts", "instances", "tokens", "entities", "relations", "images_per_post")
    return {key: stats[key] for key in keep if key in stats}


def _train_row(row: DemoRow, folder: Path, runs: Path, epochs: int | None) -> dict:
    from mmie.training import train

    overrides = [
        f"data.train={folder / 'train.txt'}",
        f"data.dev={folder / 'val.txt'}",
        f"data.test={folder / 'test.txt'}",
        f"data.images={folder / 'images'}",
    ]
    if epochs is not None:
        overrides.append(f"training.epochs={epochs}")
    run_dir = runs / f"{row.task}_{Path(row.config).stem}"
    started = time.perf_counter()
    result = train(CONFIGS / row.config, output_dir=run_dir, overrides=overrides, overwrite=True)
    return {"row": row, "metrics": result.metrics, "seconds": time.perf_counter() - started, "run_dir": run_dir}


def _print_table(task: str, results: list[dict]) -> None:
    rows = [r for r in results if r["row"].task == task]
    if not rows:
        return
    title = "MNER (entity F1)" if task == "mner" else "MRE (micro F1 without None)"
    print(f"\n== {title} on the SYNTHETIC {task} sample (not a benchmark)")
    header = f"{'model':<32} {'dev F1':>7} {'test F1':>8} {'test single':>12} {'test multi':>11} {'time':>7}"
    print(header)
    print("-" * len(header))
    for result in rows:
        test = result["metrics"].get("test", {})
        by_images = test.get("by_images", {})
        print(
            f"{result['row'].label:<32} {100 * result['metrics']['dev']['f1']:>7.1f}"
            f" {100 * test.get('f1', float('nan')):>8.1f}"
            f" {100 * by_images.get('single', {}).get('f1', float('nan')):>12.1f}"
            f" {100 * by_images.get('multi', {}).get('f1', float('nan')):>11.1f}"
            f" {result['seconds']:>6.0f}s"
        )


def _setting_scores(result: dict, folder: Path) -> dict[str, float]:
    """Test F1 of one run on the posts of each deciding setting, from its saved predictions."""
    from mmie.evaluation.predictions import read_predictions, score_by_group

    gold = read_dataset(folder / "test.txt").records
    predictions = read_predictions(result["run_dir"] / "predictions" / "test.jsonl")
    scores, _ = score_by_group(gold, predictions, read_settings(folder / META_FILE), task="ner")
    return {group: values["f1"] for group, values in scores.items()}


def _print_mechanism_table(results: list[dict], folder: Path) -> None:
    rows = [r for r in results if r["row"].task == "mner_mech"]
    if not rows:
        return
    settings = read_settings(folder / META_FILE)
    test_ids = [record.id for record in read_dataset(folder / "test.txt").records]
    sizes = {name: sum(settings[i] == name for i in test_ids) for name in SETTINGS}
    columns = [*SETTINGS, "whole"]
    print("\n== MNER (entity F1) by the setting that decides each test post, SYNTHETIC mechanisms preset")
    print("   (one seed, about 18 test posts a setting: noisy; docs/synthetic.md has the rules and a 3-seed sweep)")
    header = f"{'model':<34}" + "".join(f" {name:>10}" for name in columns)
    print(header)
    print(f"{'test posts':<34}" + "".join(f" {sizes.get(name, len(test_ids)):>10}" for name in columns))
    print("-" * len(header))
    for result in rows:
        by_setting = result["by_setting"]
        print(
            f"{result['row'].label:<34}"
            + "".join(f" {100 * by_setting.get(name, float('nan')):>10.1f}" for name in columns)
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="where data and runs go")
    parser.add_argument("--posts", type=int, default=600, help="synthetic posts per task")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--epochs", type=int, default=None, help="override every row's epochs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    for handler in logging.getLogger().handlers:
        # Each run sets mmie's logger to INFO for its train.log; the terminal keeps warnings only.
        handler.setLevel(logging.WARNING)

    folders = _synthesize(args.out, args.posts, args.seed)
    results = []
    for row in ROWS + MECHANISM_ROWS:
        print(f"\n-- training {row.label} on synthetic {row.task} ({row.config})", flush=True)
        results.append(_train_row(row, folders[row.task], args.out / "runs", args.epochs))
        if row.task == "mner_mech":
            results[-1]["by_setting"] = _setting_scores(results[-1], folders[row.task])
    for task in ("mner", "mre"):
        _print_table(task, results)
    _print_mechanism_table(results, folders["mner_mech"])
    summary = [
        {
            "task": r["row"].task,
            "model": r["row"].label,
            "config": r["row"].config,
            "dev": r["metrics"]["dev"]["f1"],
            "test": r["metrics"].get("test", {}).get("f1"),
            **({"test_by_setting": r["by_setting"]} if "by_setting" in r else {}),
            "run_dir": str(r["run_dir"]),
        }
        for r in results
    ]
    write_atomic(args.out / "demo_summary.json", json.dumps(summary, indent=2) + "\n")
    print(f"\nsummary written to {args.out / 'demo_summary.json'}")
    _extract_one(folders["mre"], args.out / "runs")


def _extract_one(mre_folder: Path, runs: Path) -> None:
    """Raw text + image bytes of one synthetic test post through the trained TPM-MI and GLRA."""
    from mmie.pipeline import Extractor

    ner, re_model = runs / "mner_tpm_mi" / "model", runs / "mre_glra" / "model"
    instance = read_dataset(mre_folder / "test.txt").records[0]
    text = " ".join(instance.post.tokens)
    images = [(mre_folder / "images" / ref).read_bytes() for ref in instance.post.images]
    extractor = Extractor.from_pretrained(ner=ner, re=re_model)
    result = extractor(text, images=images, id=instance.id)
    answer = runs.parent / "extraction.json"
    write_atomic(answer, json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    entities = result["entities"]
    print(f"\n== extraction from synthetic test post {instance.id} (TPM-MI entities, GLRA relations)")
    print(f"text: {result['text']}  ({len(result['images'])} images)")
    for entity in entities:
        span = f"[{entity['start']}:{entity['end']}]"
        print(f"  entity    {entity['text']!r} {entity['type']} {span} score {entity['score']:.2f}")
    for relation in result["relations"]:
        head, tail = entities[relation["head"]]["text"], entities[relation["tail"]]["text"]
        print(f"  relation  {head!r} -> {tail!r} {relation['relation']} score {relation['score']:.2f}")
    print(f"the whole answer (token spans, each image's relevance) as the API returns it: {answer}")
    print("\nserve these models (page at http://127.0.0.1:8000/, API docs at /docs):")
    print(f"  mmie serve --ner {ner} --re {re_model} --host 127.0.0.1 --port 8000")


if __name__ == "__main__":
    main()
