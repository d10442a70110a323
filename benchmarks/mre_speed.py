"""Benchmark: training speed and memory of GLRA and the image RE baselines, offline encoders (not run in CI).

On a SYNTHETIC MRE-MI sample (`mmie data synth --task mre`; speed and memory only, no scores), with the
demo configs (configs/synthetic/*.yaml: MiniLM + frozen EfficientNet-Lite0), batch 16:

* training examples/s of MTB, MTB + first image, MTB + all images and GLRA with a WARM feature cache
  (every image and crop encoded before, as `mmie train` does when it featurizes: a step reads cached
  vectors);
* GLRA with a COLD cache, the reference code's way (JinFish/MRE-MI): every step decodes and
  preprocesses the batch's images and crops (the featurizer without the cache) and the frozen encoder
  encodes all of them again in the model's forward (under no_grad, like the reference's ViT);
* the peak resident memory of each configuration (one subprocess per configuration, ru_maxrss);
* region building (`mmie regions build`, offline grid provider, EfficientNet-Lite0), images/s: without
  a cache (the command's default) and with a warm one.

A timed step is the whole training step: (cold: featurize the batch), collate, forward, backward, AdamW
(fused, as the engine's) step. Each repeat runs every configuration once, in its own subprocess
(``--steps`` timed steps after ``--warmup`` untimed ones), the configurations interleaved so that a
change in the machine's load hits them alike; the JSON has every repeat and the median, and the
ratios are ratios of medians of one run.

    python benchmarks/mre_speed.py                      # about 10 minutes on 2 busy cores
    python benchmarks/mre_speed.py --smoke              # a minute: checks the script
    python benchmarks/mre_speed.py --threads 1 --out mre_speed.json

Appends a run to benchmarks/results/mre_speed.json (benchmarks/_results.py), its settings saying what
was run: ``mode`` is ``smoke``, ``default`` or ``custom``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _results import mode_of, recorded_run, run_main

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs" / "synthetic"
DEFAULT_OUT = REPO / "benchmarks" / "results" / "mre_speed.json"
BATCH_SIZE = 16
RSS_LIMIT_GIB = 2.5

# configuration -> (demo config, cache mode)
TRAINING_RUNS = {
    "mtb": ("mtb.yaml", "none"),
    "mtb_first_image_warm": ("mtb_first_image.yaml", "warm"),
    "mtb_all_images_warm": ("mtb_all_images.yaml", "warm"),
    "glra_warm": ("glra.yaml", "warm"),
    "glra_cold": ("glra.yaml", "cold"),
}


def peak_rss_gib() -> float:
    # ru_maxrss is in kilobytes on Linux (bytes on macOS).
    scale = 1 / 1024**3 if platform.system() == "Darwin" else 1 / 1024**2
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale, 3)


# ------------------------------------------------------------------------------------ workers


def training_worker(spec: dict) -> dict:
    """One configuration in this process: build the model as `mmie train` does, then time training steps."""
    import torch

    from mmie.data import read_dataset
    from mmie.encoders.text import load_tokenizer
    from mmie.models.registry import create_model, create_processor
    from mmie.training.config import load_config
    from mmie.training.engine import label_set

    data = Path(spec["data"])
    # Other benchmarks (focalmre_speed.py) name their own demo config and cache mode in the spec.
    config_file, mode = TRAINING_RUNS.get(spec["name"]) or (spec["config_file"], spec["mode"])
    overrides = [
        f"data.train={data / 'train.txt'}",
        "data.dev=null",
        "data.test=null",
        f"data.images={data / 'images'}",
    ]
    if mode != "none":
        overrides.append(f"model.feature_cache={spec['cache']}")
    config = load_config(CONFIGS / config_file, overrides)
    records = list(read_dataset(config.data.train).records)
    labels = label_set("re", records)
    torch.manual_seed(0)
    tokenizer = load_tokenizer(config.model.encoder)
    processor = create_processor(config.model, tokenizer, labels, images=config.data.images)
    model = create_model(processor.config, labels, tokenizer=tokenizer).train()
    # Cold: the processor hands over pixels (no cache) while the model's encoder stays frozen, so
    # every step encodes every image and crop again, under no_grad (ImageRelationModel._encode_pixels).
    if mode == "cold":
        pixels = processor.config.model_copy(update={"freeze_vision": False})
        processor = create_processor(pixels, tokenizer, labels, images=config.data.images)
    featurizer, collate = processor.featurizer, processor.collator
    parameters = [p for p in model.parameters() if p.requires_grad]
    try:
        optimizer = torch.optim.AdamW(parameters, lr=config.training.learning_rate, fused=True)
    except (RuntimeError, ValueError):
        optimizer = torch.optim.AdamW(parameters, lr=config.training.learning_rate)

    started = time.perf_counter()
    features = None if mode == "cold" else featurizer.featurize(records)  # warm: cache reads only
    featurize_seconds = time.perf_counter() - started
    order = list(range(len(records)))
    random.Random(0).shuffle(order)
    cursor = 0

    def step() -> None:
        nonlocal cursor
        if cursor + BATCH_SIZE > len(order):
            cursor = 0
        rows = order[cursor : cursor + BATCH_SIZE]
        cursor += BATCH_SIZE
        if features is None:
            batch_features = featurizer.featurize([records[i] for i in rows])
        else:
            batch_features = [features[i] for i in rows]
        loss = model(**collate(batch_features)).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(spec["warmup"]):
        step()
    rates = []
    for _ in range(spec["repeats"]):
        started = time.perf_counter()
        for _ in range(spec["steps"]):
            step()
        rates.append(round(spec["steps"] * BATCH_SIZE / (time.perf_counter() - started), 3))
    result = {
        "config": f"configs/synthetic/{config_file}",
        "model": config.model.name,
        "cache": mode,
        "train_examples": len(records),
        "featurize_seconds": round(featurize_seconds, 2),
        "examples_per_second": rates,
        "median_examples_per_second": statistics.median(rates),
        "peak_rss_gib": peak_rss_gib(),
    }
    cache = featurizer.cache if featurizer.reads_images else None
    if cache is not None:
        result["cache_stats"] = cache.stats.as_dict()
    return result


def regions_worker(spec: dict) -> dict:
    """`mmie regions build` with the offline grid provider: images/s without a cache and with a warm one."""
    from mmie.data import read_dataset
    from mmie.regions import build_regions, create_provider, image_jobs

    data = Path(spec["data"])
    scratch = Path(spec["scratch"])
    records = list(read_dataset(data / "train.txt").records)
    # the first records naming `images` distinct images
    chosen, seen = [], set()
    for record in records:
        if len(seen) >= spec["region_images"]:
            break
        chosen.append(record)
        seen.update(record.post.images)
    images = len(image_jobs(chosen))
    cache_dir = scratch / "region-cache"
    rates: dict[str, list[float]] = {"no_cache": [], "warm_cache": []}
    providers = {
        "no_cache": create_provider("grid"),  # the command's default: no --cache-dir
        "warm_cache": create_provider("grid", cache_dir=cache_dir),
    }
    build_regions(chosen, data / "images", providers["warm_cache"], scratch / "fill", 2, progress=False)  # warms it
    for repeat in range(spec["repeats"]):
        for mode, provider in providers.items():
            out = scratch / f"{mode}-{repeat}"
            started = time.perf_counter()
            summary = build_regions(chosen, data / "images", provider, out, 2, progress=False)
            rates[mode].append(round(summary.built / (time.perf_counter() - started), 3))
            shutil.rmtree(out)
    return {
        "provider": "grid (EfficientNet-Lite0 saliency boxes)",
        "top_k": 2,
        "images": images,
        "images_per_second": rates,
        "median_images_per_second": {mode: statistics.median(values) for mode, values in rates.items()},
        "peak_rss_gib": peak_rss_gib(),
    }


def warm_cache(data: Path, cache: Path) -> float:
    """Encode every image and crop of the training file into ``cache`` (what the warm runs read)."""
    from mmie.data import read_dataset
    from mmie.encoders.text import load_tokenizer
    from mmie.models.registry import create_processor
    from mmie.training.config import load_config

    config = load_config(
        CONFIGS / "glra.yaml",
        [f"data.train={data / 'train.txt'}", f"data.images={data / 'images'}", f"model.feature_cache={cache}"],
    )
    records = list(read_dataset(config.data.train).records)
    tokenizer = load_tokenizer(config.model.encoder)
    featurizer = create_processor(config.model, tokenizer, ["None"], images=config.data.images).featurizer
    started = time.perf_counter()
    featurizer.featurize(records, with_labels=False)
    return round(time.perf_counter() - started, 2)


# ------------------------------------------------------------------------------------- parent


def merge_repeats(done: list[dict]) -> dict:
    """The repeats of one configuration (one subprocess each): every rate, their median, the peak RSS."""
    rates = [rate for run in done for rate in run["examples_per_second"]]
    merged = {key: value for key, value in done[0].items() if key not in ("examples_per_second", "cache_stats")}
    merged["examples_per_second"] = rates
    merged["median_examples_per_second"] = statistics.median(rates)
    merged["peak_rss_gib"] = max(run["peak_rss_gib"] for run in done)
    if "cache_stats" in done[0]:
        merged["cache_stats_first_repeat"] = done[0]["cache_stats"]
    return merged


def run_worker(kind: str, spec: dict, threads: int | None) -> dict:
    """Run one worker in a fresh interpreter (its own peak RSS) and return its JSON line."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--spec", json.dumps(spec)]
    if threads:
        command += ["--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if done.returncode != 0:
        raise SystemExit(f"worker {kind} {spec.get('name', '')} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=200, help="synthetic posts (70%% are training examples)")
    parser.add_argument("--steps", type=int, default=8, help="timed training steps per repeat")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--region-images", type=int, default=60, help="images per region-building repeat")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check the script")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--worker", choices=["training", "regions", "warm"], help=argparse.SUPPRESS)
    parser.add_argument("--spec", type=str, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    if args.worker:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        spec = json.loads(args.spec)
        if args.worker == "training":
            result = training_worker(spec)
        elif args.worker == "regions":
            result = regions_worker(spec)
        else:
            result = {"seconds": warm_cache(Path(spec["data"]), Path(spec["cache"]))}
        print(json.dumps(result))
        return

    if args.smoke:
        args.posts, args.steps, args.warmup, args.repeats, args.region_images = 40, 2, 1, 1, 8
    import torch

    from mmie.data.synth import generate_dataset

    if args.threads:
        torch.set_num_threads(args.threads)  # the workers get --threads; the run records it
    settings = {
        "mode": mode_of(parser, args, ["posts", "steps", "warmup", "repeats", "region_images"], args.smoke),
        "posts": args.posts,
        "batch_size": BATCH_SIZE,
        "steps": args.steps,
        "warmup_steps": args.warmup,
        "repeats": args.repeats,
        "region_images": args.region_images,
        "cold": "per step: the batch's images and crops decoded and preprocessed (featurizer without cache), "
        "then encoded by the frozen EfficientNet-Lite0 in the forward under no_grad (the reference code's way)",
        "warm": "every image and crop encoded into the feature cache before; steps read cached vectors",
    }
    with recorded_run(args.out, settings) as record:
        results = record["results"]
        results["what"] = (
            "SYNTHETIC MRE sample, offline encoders (MiniLM + frozen EfficientNet-Lite0), batch 16: training "
            "examples/s (warm / cold feature cache), peak RSS per configuration, region building images/s"
        )
        with tempfile.TemporaryDirectory(prefix="mre-speed-") as scratch_dir:
            scratch = Path(scratch_dir)
            data, cache = scratch / "synth_mre", scratch / "feature-cache"
            started = time.perf_counter()
            generate_dataset("mre", data, args.posts, 13)
            settings["generation_seconds"] = round(time.perf_counter() - started, 2)
            print(f"warming the feature cache ({data})", flush=True)
            settings["cache_warming_seconds"] = run_worker(
                "warm", {"data": str(data), "cache": str(cache)}, args.threads
            )["seconds"]
            # One subprocess per configuration and repeat, the configurations interleaved within each
            # repeat: a change in the machine's load over time then hits every configuration alike.
            repeats: dict[str, list[dict]] = {name: [] for name in TRAINING_RUNS}
            for repeat in range(args.repeats):
                for name in TRAINING_RUNS:
                    print(f"training: {name}, repeat {repeat + 1}/{args.repeats}", flush=True)
                    spec = {
                        "name": name,
                        "data": str(data),
                        "cache": str(cache),
                        "steps": args.steps,
                        "warmup": args.warmup,
                        "repeats": 1,
                    }
                    repeats[name].append(run_worker("training", spec, args.threads))
                    print(json.dumps(repeats[name][-1]), flush=True)
            runs = {name: merge_repeats(done) for name, done in repeats.items()}
            results["training"] = runs
            print("region building (grid provider)", flush=True)
            region_scratch = scratch / "regions"
            region_scratch.mkdir()
            results["region_building"] = run_worker(
                "regions",
                {
                    "data": str(data),
                    "scratch": str(region_scratch),
                    "repeats": args.repeats,
                    "region_images": args.region_images,
                },
                args.threads,
            )

        rate = {name: run["median_examples_per_second"] for name, run in runs.items()}
        peak = max([run["peak_rss_gib"] for run in runs.values()] + [results["region_building"]["peak_rss_gib"]])
        results["checks"] = {
            "glra_warm_over_mtb": round(rate["glra_warm"] / rate["mtb"], 3),
            "glra_warm_over_mtb_at_least_0.75": rate["glra_warm"] >= 0.75 * rate["mtb"],
            "glra_warm_over_cold": round(rate["glra_warm"] / rate["glra_cold"], 2),
            "cold_at_least_5x_slower": rate["glra_warm"] >= 5 * rate["glra_cold"],
            "max_peak_rss_gib": peak,
            f"peak_rss_under_{RSS_LIMIT_GIB}_gib": peak < RSS_LIMIT_GIB,
            "region_images_per_second_no_cache": results["region_building"]["median_images_per_second"]["no_cache"],
        }
        print(json.dumps(results["checks"], indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    run_main(main)
