"""Benchmark: posts/s of `mmie extract --engine ray` (a local Ray runtime, N actors) against the in-process
engine, on the same corpus file in the same run, with the same models and batch size.

The corpus is SYNTHETIC: the distinct posts of a `mmie data synth --task mre` sample (test split, then val,
train), written as JSON lines with their image paths, the way a user hands a corpus to `mmie extract`.
Both engines run the command itself (``mmie.cli.main``) from a cold start: the in-process figure includes
loading the models, the Ray figure starting N actors that each load them (Ray's own runtime is started
first and timed apart). Then the two results files are compared record for record.

    python benchmarks/extract_ray.py --ner demo_out/runs/mner_tpm_mi/model --re demo_out/runs/mre_glra/model \\
        --sample demo_out/synth_mre --posts 256 --actors 2

Appends a run to benchmarks/results/extract_ray.json (benchmarks/_results.py). Speed only (no scores); the
machine may be shared (its load average is recorded with the run).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

from _results import recorded_run, relative, run_main

RESULTS = Path(__file__).resolve().parent / "results"


def write_corpus(sample: Path, count: int, path: Path) -> int:
    """The first ``count`` distinct posts of the sample as a JSON-lines corpus; returns its image count."""
    from mmie.data import read_dataset

    seen: set[str] = set()
    images = 0
    with open(path, "w", encoding="utf-8") as handle:
        for split in ("test.txt", "val.txt", "train.txt"):
            for instance in read_dataset(sample / split).records:
                post = instance.post
                if post.id in seen or len(seen) == count:
                    continue
                seen.add(post.id)
                refs = [str((sample / "images" / ref).resolve()) for ref in post.images]
                images += len(refs)
                handle.write(json.dumps({"id": post.id, "text": " ".join(post.tokens), "images": refs}) + "\n")
    return images


def compare_outputs(first: Path, second: Path) -> dict:
    """Byte identity of two results files, and, record for record, whether they agree once scores are set
    aside (ids, entities, relations, errors) and by how much their scores differ at most. Scores can move
    in the last digits when batches are padded differently or torch runs on another number of threads."""
    score_gap = 0.0

    def without_scores(value: object, other: object) -> object:
        nonlocal score_gap
        if isinstance(value, dict) and isinstance(other, dict):
            for key in ("score", "scores"):
                a, b = value.get(key), other.get(key)
                if isinstance(a, float) and isinstance(b, float):
                    score_gap = max(score_gap, abs(a - b))
                elif isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
                    score_gap = max([score_gap, *(abs(a[k] - b[k]) for k in a)])
            keys = sorted(set(value) - {"score", "scores"})
            return {key: without_scores(value[key], other.get(key)) for key in keys}
        if isinstance(value, list) and isinstance(other, list):
            return [without_scores(a, b) for a, b in zip(value, other)] + value[len(other) :]
        return value

    lines_a = first.read_text(encoding="utf-8").splitlines()
    lines_b = second.read_text(encoding="utf-8").splitlines()
    same = len(lines_a) == len(lines_b)
    for line_a, line_b in zip(lines_a, lines_b):
        a, b = json.loads(line_a), json.loads(line_b)
        same = same and without_scores(a, b) == without_scores(b, a)
    return {
        "identical_bytes": first.read_bytes() == second.read_bytes(),
        "same_records_but_scores": same,
        "max_score_difference": round(score_gap, 6),
    }


def timed_extract(argv: list[str]) -> float:
    from mmie.cli import main as mmie

    started = time.perf_counter()
    mmie(argv)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ner", type=Path, required=True)
    parser.add_argument("--re", type=Path, required=True)
    parser.add_argument("--sample", type=Path, required=True, help="a `mmie data synth --task mre` folder")
    parser.add_argument("--posts", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--part-size", type=int, default=64)
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS / "extract_ray.json")
    args = parser.parse_args()

    import ray
    import torch

    settings = {key: value for key, value in vars(args).items() if key != "out"}
    settings.update(ner=relative(args.ner), re=relative(args.re), sample=relative(args.sample))
    work = Path(tempfile.mkdtemp(prefix="mmie-extract-ray-"))
    with recorded_run(args.out, settings) as record:
        corpus = work / "posts.jsonl"
        images = write_corpus(args.sample, args.posts, corpus)
        posts = len(corpus.read_text().splitlines())
        common = ["extract", "--ner", str(args.ner), "--re", str(args.re), "--input", str(corpus)]
        common += ["--batch-size", str(args.batch_size)]
        in_process = timed_extract([*common, "--out", str(work / "in-process.jsonl")])
        started = time.perf_counter()
        ray.init(
            num_cpus=args.actors,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
            object_store_memory=256 * 2**20,
            _temp_dir=str(work / "ray"),
        )
        ray_start = time.perf_counter() - started
        try:
            ray_options = ["--engine", "ray", "--actors", str(args.actors), "--part-size", str(args.part_size)]
            on_ray = timed_extract([*common, *ray_options, "--out", str(work / "ray.jsonl")])
        finally:
            ray.shutdown()
        agreement = compare_outputs(work / "in-process.jsonl", work / "ray.jsonl")
        record["results"] = result = {
            "benchmark": "extract_ray",
            "data": f"SYNTHETIC posts of {relative(args.sample)} (speed only)",
            "posts": posts,
            "images": images,
            "in_process": {"seconds": round(in_process, 2), "posts_per_s": round(posts / in_process, 2)},
            "ray": {
                "actors": args.actors,
                "seconds": round(on_ray, 2),
                "posts_per_s": round(posts / on_ray, 2),
                "runtime_start_seconds": round(ray_start, 2),
            },
            "ray_over_in_process": round(in_process / on_ray, 3),
            "output_agreement": agreement,
            "in_process_torch_threads": torch.get_num_threads(),
        }
        print(json.dumps(result, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    run_main(main)
