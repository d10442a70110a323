"""Benchmark: throughput of the raw-post pipeline (`mmie.Extractor.pipe`) with the offline models.

On SYNTHETIC posts (the test split of a `mmie data synth --task mre` sample: text + 1..4 images as
bytes, the way a user hands them over), with trained model folders (``make demo`` writes TPM-MI for
NER and GLRA for RE under demo_out/runs/; MiniLM + frozen EfficientNet-Lite0):

* posts/s of ``pipe(batch_size=32)`` COLD (a fresh Extractor: every image encoded) and WARM (the same
  posts again: the frozen features come from the in-memory cache);
* single-post latency p50 (warm) of ``extractor(text, images=...)``;
* NER alone: posts/s of an Extractor with the NER model only (same tokenizer, image decoding, batch 32,
  warm), and the ratio warm pipeline / NER alone (target >= 0.6).
* ``--one-pass-re``: the same for a second pipeline, the NER model with a one-pass relation model
  (``mtb_levitated``: each post encoded once for all its candidate pairs; trained by
  ``mmie train configs/synthetic/mtb_levitated.yaml``), timed interleaved with the first and NER alone;
  repeated, several one-pass models in the same run (``one_pass`` is then a list).

    python benchmarks/extract_speed.py --ner demo_out/runs/mner_tpm_mi/model --re demo_out/runs/mre_glra/model \\
        --sample demo_out/synth_mre --posts 128 --one-pass-re demo_out/runs/mre_mtb_levitated/model

Appends a run to benchmarks/results/extract_speed.json (benchmarks/_results.py). Speed only (no scores); the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from _results import recorded_run, relative, run_main

RESULTS = Path(__file__).resolve().parent / "results"


def synthetic_posts(sample: Path, count: int) -> list[dict]:
    """Distinct posts of the sample's test split (then train), as text + image bytes."""
    from mmie.data import read_dataset

    posts, seen = [], set()
    for split in ("test.txt", "val.txt", "train.txt"):
        for instance in read_dataset(sample / split).records:
            post = instance.post
            if post.id in seen:
                continue
            seen.add(post.id)
            images = [(sample / "images" / ref).read_bytes() for ref in post.images]
            posts.append({"id": post.id, "text": " ".join(post.tokens), "images": images})
            if len(posts) == count:
                return posts
    return posts


def with_relative_paths(described: dict) -> dict:
    """``Extractor.describe()`` with each model's folder relative to the repository."""
    return {role: {**model, "path": relative(model["path"])} for role, model in described.items()}


def rate(extractor, posts: list[dict], batch_size: int) -> float:
    started = time.perf_counter()
    results = list(extractor.pipe(posts, batch_size=batch_size))
    assert len(results) == len(posts)
    return len(posts) / (time.perf_counter() - started)


def count_text_tokens(extractor) -> dict[str, int]:
    """Live counters of the (unpadded) sub-word tokens each model's text encoder reads: the RE model
    reads every candidate pair's marked text, the work that grows with the pairs of a post; and
    (``*_padded``) of the positions it computes, padding included."""
    counts: dict[str, int] = {}
    for task, loaded in (("ner", extractor.ner), ("re", extractor.re)):
        counts[task] = counts[f"{task}_padded"] = 0

        def hook(_module, _args, kwargs, _output, task=task):
            length = kwargs["input_ids"].shape[1]  # a visual prefix widens the mask, not the text
            counts[f"{task}_padded"] += kwargs["input_ids"].numel()
            mask = kwargs["attention_mask"]
            if mask.dim() == 4:  # a one-pass model's additive [rows, 1, L, L] mask: a real token reads itself
                counts[task] += int((mask.diagonal(dim1=-2, dim2=-1) == 0).sum())
            else:
                counts[task] += int(mask[:, -length:].sum())

        loaded.model.text_encoder.register_forward_hook(hook, with_kwargs=True)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ner", type=Path, required=True)
    parser.add_argument("--re", type=Path, required=True)
    parser.add_argument("--sample", type=Path, required=True, help="a `mmie data synth --task mre` folder")
    parser.add_argument(
        "--one-pass-re",
        type=Path,
        action="append",
        default=[],
        help="a one-pass RE model folder (mtb_levitated); repeat it to time several in the same run",
    )
    parser.add_argument("--posts", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--single", type=int, default=20, help="posts timed one by one for the p50")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved warm timings; medians are reported")
    parser.add_argument("--out", type=Path, default=RESULTS / "extract_speed.json")
    args = parser.parse_args()

    import torch

    from mmie.inference.loading import load_model
    from mmie.pipeline import Extractor

    if args.threads:
        torch.set_num_threads(args.threads)
    settings = {key: value for key, value in vars(args).items() if key != "out"}
    settings.update(ner=relative(args.ner), re=relative(args.re), sample=relative(args.sample))
    folders = args.one_pass_re
    settings["one_pass_re"] = (relative(folders[0]) if len(folders) == 1 else [relative(f) for f in folders]) or None
    with recorded_run(args.out, settings) as record:
        posts = synthetic_posts(args.sample, args.posts)
        pipeline = Extractor.from_pretrained(ner=args.ner, re=args.re, include_none=True)  # lists every candidate pair
        cold = rate(pipeline, posts, args.batch_size)
        tokens = count_text_tokens(pipeline)
        started = time.perf_counter()
        results = list(pipeline.pipe(posts, batch_size=args.batch_size))
        warm = len(posts) / (time.perf_counter() - started)
        warm_tokens = dict(tokens)
        latencies = []
        for post in posts[: args.single]:
            started = time.perf_counter()
            pipeline(post["text"], images=post["images"])
            latencies.append(time.perf_counter() - started)
        ner_only = Extractor(ner=pipeline.ner)
        rate(ner_only, posts, args.batch_size)  # warm its feature cache
        ner_alone = [rate(ner_only, posts, args.batch_size)]
        one_pass = []  # per one-pass model: its pipeline, its results, its rates, its tokens of one warm pass
        for folder in folders:
            extractor = Extractor(ner=pipeline.ner, re=load_model(folder), include_none=True)
            found = list(extractor.pipe(posts, batch_size=args.batch_size))  # warm (shared NER cache)
            counters = count_text_tokens(extractor)
            rates = [rate(extractor, posts, args.batch_size)]
            one_pass.append((extractor, found, rates, dict(counters)))
        repeats = [warm]
        for _ in range(args.repeats - 1):  # interleaved, so a busy moment of the machine hits all
            repeats.append(rate(pipeline, posts, args.batch_size))
            ner_alone.append(rate(ner_only, posts, args.batch_size))
            for extractor, _, rates, _ in one_pass:
                rates.append(rate(extractor, posts, args.batch_size))
        ratios = [pipe / alone for pipe, alone in zip(repeats, ner_alone)]
        record["results"] = result = {
            "benchmark": "extract_speed",
            "data": f"SYNTHETIC posts of {relative(args.sample)} (speed only)",
            "models": with_relative_paths(pipeline.describe()),
            "posts": len(posts),
            "images": sum(len(p["images"]) for p in posts),
            "posts_per_s": {
                "cold": round(cold, 2),
                "warm": round(statistics.median(repeats), 2),
                "ner_alone_warm": round(statistics.median(ner_alone), 2),
            },
            "single_post_p50_ms": round(1000 * statistics.median(latencies), 1),
            "entities_per_post": round(sum(len(r["entities"]) for r in results) / len(posts), 2),
            "candidate_pairs_per_post": round(sum(len(r["relations"]) for r in results) / len(posts), 2),
            "text_tokens_warm_pass": warm_tokens,
            "warm_over_ner_alone": round(statistics.median(ratios), 3),
            "warm_over_ner_alone_per_repeat": [round(ratio, 3) for ratio in ratios],
            "target_warm_over_ner_alone": 0.6,
        }
        variants = []
        for extractor, found, rates, tokens in one_pass:
            ratios = [pipe / alone for pipe, alone in zip(rates, ner_alone)]
            variants.append(
                {
                    "re_model": with_relative_paths(extractor.describe())["re"],
                    "posts_per_s_warm": round(statistics.median(rates), 2),
                    "candidate_pairs_per_post": round(sum(len(r["relations"]) for r in found) / len(posts), 2),
                    "text_tokens_warm_pass": tokens,
                    "warm_over_ner_alone": round(statistics.median(ratios), 3),
                    "warm_over_ner_alone_per_repeat": [round(ratio, 3) for ratio in ratios],
                    "warm_over_per_pair_pipeline": round(statistics.median(rates) / statistics.median(repeats), 3),
                    "target_warm_over_ner_alone": 0.6,
                }
            )
        if variants:
            result["one_pass"] = variants[0] if len(variants) == 1 else variants
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    run_main(main)
