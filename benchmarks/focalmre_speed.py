"""Benchmark: FocalMRE training examples/s with a warm feature cache vs MTB (not run in CI).

On a SYNTHETIC MRE-MI sample (`mmie data synth --task mre`; speed only, no scores), with the demo
configs (configs/synthetic/focalmre.yaml and mtb.yaml: MiniLM + frozen EfficientNet-Lite0), batch 16.
FocalMRE reads up to 7 framed copies per image (4 VG + 3 OD); with a warm cache a step reads their
pooled patch features, so the target is >= 0.5x MTB's examples/s. The timing is mre_speed.py's
(its workers, one subprocess per configuration and repeat, interleaved; medians of one run).

    python benchmarks/focalmre_speed.py --smoke          # a minute or two
    python benchmarks/focalmre_speed.py --posts 200 --repeats 3

Appends a run to benchmarks/results/focalmre_speed.json (benchmarks/_results.py), its settings saying
what was run: ``mode`` is ``smoke``, ``default`` (the sizes above) or ``custom`` (see the settings).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import mode_of, recorded_run, run_main  # noqa: E402
from mre_speed import merge_repeats, run_worker  # noqa: E402 - the shared timing helpers

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "focalmre_speed.json"
RUNS = {"mtb": ("mtb.yaml", "none"), "focalmre_warm": ("focalmre.yaml", "warm")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=200)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    if args.smoke:
        args.posts, args.steps, args.warmup, args.repeats = 40, 2, 1, 1
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from mmie.data.synth import generate_dataset

    if args.threads:
        torch.set_num_threads(args.threads)  # the workers get --threads; the run records it
    settings = {
        "mode": mode_of(parser, args, ["posts", "steps", "warmup", "repeats"], args.smoke),
        "posts": args.posts,
        "batch_size": 16,
        "steps": args.steps,
        "warmup_steps": args.warmup,
        "repeats": args.repeats,
    }
    with recorded_run(args.out, settings) as record:
        results = record["results"]
        results["what"] = (
            "SYNTHETIC MRE sample, MiniLM + frozen EfficientNet-Lite0, batch 16: training examples/s of "
            "FocalMRE (warm cache: the framed copies encoded before) vs MTB; target ratio >= 0.5"
        )
        with tempfile.TemporaryDirectory(prefix="focalmre-speed-") as scratch_dir:
            data, cache = Path(scratch_dir) / "synth_mre", Path(scratch_dir) / "feature-cache"
            generate_dataset("mre", data, args.posts, 13)
            base = {"data": str(data), "cache": str(cache), "warmup": args.warmup, "repeats": 1}
            started = time.perf_counter()  # one untimed FocalMRE run fills the cache with every framed copy
            run_worker(
                "training",
                {
                    **base,
                    "name": "focalmre_fill",
                    "config_file": "focalmre.yaml",
                    "mode": "warm",
                    "steps": 1,
                    "warmup": 0,
                },
                args.threads,
            )
            settings["cache_filling_seconds"] = round(time.perf_counter() - started, 2)
            repeats: dict[str, list[dict]] = {name: [] for name in RUNS}
            for repeat in range(args.repeats):
                for name, (config_file, mode) in RUNS.items():
                    print(f"training: {name}, repeat {repeat + 1}/{args.repeats}", flush=True)
                    spec = {**base, "name": name, "config_file": config_file, "mode": mode, "steps": args.steps}
                    repeats[name].append(run_worker("training", spec, args.threads))
                    print(json.dumps(repeats[name][-1]), flush=True)
        runs = {name: merge_repeats(done) for name, done in repeats.items()}
        results["training"] = runs
        ratio = runs["focalmre_warm"]["median_examples_per_second"] / runs["mtb"]["median_examples_per_second"]
        results["focalmre_vs_mtb"] = round(ratio, 3)
        results["target_met"] = ratio >= 0.5
        print(f"FocalMRE / MTB examples/s: {ratio:.3f} (target >= 0.5)")


if __name__ == "__main__":
    run_main(main)
