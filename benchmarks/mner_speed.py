"""Training speed and memory of TPM-MI against the text-only BERT-CRF (not run in CI).

    python benchmarks/mner_speed.py [--work DIR] [--repeats 3] [--out benchmarks/results/mner_speed.json]

On the SYNTHETIC MNER sample (`mmie data synth --task mner`, 600 posts, seed 13: 420 training posts)
with the offline encoders (MiniLM text, EfficientNet-Lite0 vision), batch size 16, it measures:

* ``text``       BERT-CRF, text only (configs/synthetic/bert_crf.yaml);
* ``tpm_cached`` TPM-MI, frozen vision, features from the WARM feature cache (configs/synthetic/tpm_mi.yaml);
* ``tpm_nocache`` TPM-MI, frozen vision, cache OFF: the featurizer hands over pixels (the fine-tuned
  path's inputs) and the model's frozen encoder runs on every training step (no gradient), which is
  what training without the cache costs;
* ``tpm_finetuned`` TPM-MI, vision fine-tuned end to end (``freeze_vision: false``); the vision
  encoder's calls are counted: images encoded per step against the posts' real images and their 4 slots.

Each configuration runs in its own subprocess, so its peak RSS (``ru_maxrss``) is its own: load the
encoders, featurize the whole training split (as `mmie train` does), then train on shuffled batches
with the engine's pieces (the model's featurizer and collator, AdamW fused with the encoder / head
learning rates, gradient clipping), timing steps after a warm-up. Configurations alternate within
each repeat so that a load change on the (shared) machine hits all of them; the JSON has the median
of each number over the repeats, and ratios computed within each repeat (then their median).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from transformers import PrinterCallback, ProgressCallback, TrainerCallback

from _results import recorded_run, relative, run_main

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs" / "synthetic"
BATCH_SIZE = 16
# what each configuration trains: (config file, overrides, timed steps, warm-up steps)
RUNS: dict[str, tuple[str, list[str], int, int]] = {
    "text": ("bert_crf.yaml", [], 24, 2),
    "tpm_cached": ("tpm_mi.yaml", [], 24, 2),
    "tpm_nocache": ("tpm_mi.yaml", [], 8, 1),
    "tpm_finetuned": ("tpm_mi.yaml", ["model.freeze_vision=false"], 8, 1),
}


# ------------------------------------------------------------------------------- worker side


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _worker(run: str, data: Path, cache: Path) -> dict:
    """One configuration in this (fresh) process: featurize, then time training steps."""
    import torch

    from mmie.encoders.text import load_tokenizer
    from mmie.models.image_model import ImageModelMixin
    from mmie.models.registry import create_model, create_processor
    from mmie.training.config import load_config

    # the engine's own Trainer (two learning rates, fused AdamW) and arguments, so the steps are `mmie train`'s
    from mmie.training.engine import FeatureDataset, _trainer_class, _training_arguments, label_set, read_split

    config_file, overrides, steps, warmup = RUNS[run]
    config = load_config(
        CONFIGS / config_file,
        [
            *overrides,
            f"data.train={data / 'train.txt'}",
            f"data.dev={data / 'val.txt'}",
            "data.test=null",
            f"data.images={data / 'images'}",
            f"training.batch_size={BATCH_SIZE}",
            *([f"model.feature_cache={cache}"] if config_file != "bert_crf.yaml" else []),
        ],
    )
    torch.manual_seed(config.training.seed)
    records = read_split(config, "train")
    labels = label_set(config.task, records, read_split(config, "dev"))
    tokenizer = load_tokenizer(config.model.encoder)
    processor = create_processor(config.model, tokenizer, labels, images=config.data.images)
    model = create_model(processor.config, labels, tokenizer=tokenizer)
    if run == "tpm_nocache":
        # cache off: the processor gives pixels (as for fine-tuning); the model's encoder stays frozen
        pixels = processor.config.model_copy(update={"freeze_vision": False})
        processor = create_processor(pixels, tokenizer, labels, images=config.data.images)

    started = time.perf_counter()
    features = processor.featurize(records)
    featurize_seconds = time.perf_counter() - started

    vision = _count_vision_calls(model) if isinstance(model, ImageModelMixin) else None
    clock = _StepClock(warmup, vision)
    model.register_forward_pre_hook(clock.count_images, with_kwargs=True)
    with tempfile.TemporaryDirectory() as scratch:
        arguments = dataclasses.replace(
            _training_arguments(config, Path(scratch), has_dev=False),
            max_steps=warmup + steps,
            save_strategy="no",
            logging_steps=10_000,
        )
        trainer = _trainer_class()(
            model=model,
            args=arguments,
            train_dataset=FeatureDataset(features),
            data_collator=processor.collator,
            processing_class=tokenizer,
            head_learning_rate=config.training.head_learning_rate,
            callbacks=[clock],
        )
        trainer.remove_callback(ProgressCallback)
        trainer.remove_callback(PrinterCallback)
        trainer.train()
    step_seconds = clock.step_seconds
    result = {
        "run": run,
        "posts": len(records),
        "featurize_seconds": round(featurize_seconds, 3),
        "timed_steps": steps,
        "median_step_seconds": round(statistics.median(step_seconds), 4),
        "examples_per_second": round(BATCH_SIZE / statistics.median(step_seconds), 3),
        "examples_per_second_mean": round(BATCH_SIZE * len(step_seconds) / sum(step_seconds), 3),
        "peak_rss_mib": round(_peak_rss_mib(), 1),
        "torch_threads": torch.get_num_threads(),
    }
    if vision is not None and "pixel_values" in features[0]:
        result["vision"] = {
            "images_encoded": vision["images"],
            "real_images_in_batches": clock.real_images,
            "image_slots_in_batches": clock.slots,
            "forward_seconds": round(vision["seconds"], 3),
            "forward_ms_per_image": round(1000 * vision["seconds"] / max(vision["images"], 1), 2),
            **_real_versus_padded_forward(model, features),
        }
    return result


def _real_versus_padded_forward(model, features: list[dict]) -> dict:
    """One batch through the vision encoder as the model runs it (real images only) and as the
    reference code does (all 4 slots, padding included): forward seconds, median of 3."""
    import torch

    from mmie.features.collate import Deferred

    def tensor(value):  # the fine-tuned path's pixels are made when a batch is collated
        return value.compute() if isinstance(value, Deferred) else value

    pixels = torch.stack([tensor(feature["pixel_values"]) for feature in features[:BATCH_SIZE]])
    mask = torch.stack([feature["image_mask"] for feature in features[:BATCH_SIZE]])
    encoder = model.vision_encoder

    def seconds(batch: torch.Tensor) -> float:
        times = []
        for _ in range(3):
            begin = time.perf_counter()
            with torch.no_grad():
                encoder.encode_pixels(batch)
            times.append(time.perf_counter() - begin)
        return statistics.median(times)

    real, padded = seconds(pixels[mask]), seconds(pixels.flatten(0, 1))
    return {
        "one_batch_real_images": int(mask.sum()),
        "one_batch_slots": mask.numel(),
        "one_batch_real_only_seconds": round(real, 3),
        "one_batch_all_slots_seconds": round(padded, 3),
    }


def _count_vision_calls(model) -> dict:
    """Wrap the vision encoder's ``encode_pixels``: how many images it encodes, in how much time."""
    counter = {"images": 0, "seconds": 0.0}
    encoder = model.vision_encoder
    original = encoder.encode_pixels

    def counted(pixel_values):
        begin = time.perf_counter()
        out = original(pixel_values)
        counter["seconds"] += time.perf_counter() - begin
        counter["images"] += int(pixel_values.shape[0])
        return out

    encoder.encode_pixels = counted
    return counter


class _StepClock(TrainerCallback):
    """Trainer callback: wall time between consecutive step ends (data, forward, backward, optimizer),
    after ``warmup`` steps; also counts the real images and image slots of the timed batches."""

    def __init__(self, warmup: int, vision: dict | None) -> None:
        self.warmup, self.vision = warmup, vision
        self.step_seconds: list[float] = []
        self.real_images = self.slots = 0
        self._last: float | None = None
        self._steps = 0

    @property
    def timing(self) -> bool:
        return self._last is not None

    def count_images(self, module, args, kwargs) -> None:
        """Forward pre-hook on the model: the real images and slots of each timed training batch."""
        mask = kwargs.get("image_mask")
        if mask is not None and self.timing and module.training:
            self.real_images += int(mask.sum())
            self.slots += mask.numel()

    def on_step_begin(self, args, state, control, **kwargs) -> None:
        if self._steps == self.warmup and self._last is None:
            self._last = time.perf_counter()
            if self.vision is not None:
                self.vision["images"], self.vision["seconds"] = 0, 0.0

    def on_step_end(self, args, state, control, **kwargs) -> None:
        self._steps += 1
        if self._last is not None:
            now = time.perf_counter()
            self.step_seconds.append(now - self._last)
            self._last = now


# ------------------------------------------------------------------------------- parent side


def _run_worker(run: str, data: Path, cache: Path) -> dict:
    command = [sys.executable, __file__, "--worker", run, "--data", str(data), "--cache", str(cache)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"worker {run} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _warm_cache(data: Path, cache: Path) -> dict:
    """Fill a fresh feature cache folder with every image of the sample: cold (every image encoded), then
    warm (every image read back)."""
    from mmie.encoders.cache import FeatureCache, build_feature_cache, image_files
    from mmie.encoders.vision import load_vision_encoder

    paths = image_files(data / "images")
    timings = {}
    for state in ("cold", "warm"):
        cache_object = FeatureCache(cache, load_vision_encoder("efficientnet-lite0", frozen=True))
        started = time.perf_counter()
        stats = build_feature_cache(cache_object, paths)
        timings[state] = {"seconds": round(time.perf_counter() - started, 2), **stats.as_dict()}
        if state == "cold" and stats.misses != len(paths):  # a warm folder would time reads, not encoding
            raise SystemExit(
                f"the cold pass found {stats.misses} of {len(paths)} images to encode: {cache} is not fresh"
            )
    return {"images": len(paths), **timings}


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 4)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=REPO / "demo_out", help="holds synth_mner/ and the cache")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--runs", default=",".join(RUNS), help="comma-separated subset of " + ",".join(RUNS))
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "mner_speed.json")  # appended
    parser.add_argument("--worker", choices=list(RUNS), help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(_worker(args.worker, args.data, args.cache)))
        return

    from mmie.data.synth import generate_dataset

    data = args.work / "synth_mner"
    if not (data / "train.txt").exists():
        generate_dataset("mner", data, 600, 13, overwrite=True)
    settings = {
        "work": relative(args.work),
        "repeats": args.repeats,
        "runs": args.runs.split(","),
        "batch_size": BATCH_SIZE,
    }
    with recorded_run(args.out, settings) as record, tempfile.TemporaryDirectory(dir=args.work) as fresh:
        cache = Path(fresh) / "bench-vision-cache"  # fresh: the "cold" pass encodes every image
        print("filling a fresh feature cache ...", flush=True)
        cache_timing = _warm_cache(data, cache)
        record["results"]["feature_cache_fill"] = cache_timing
        runs = args.runs.split(",")
        repeats: list[dict[str, dict]] = []
        record["results"]["per_repeat"] = repeats
        for repeat in range(args.repeats):
            results = {}
            for run in runs:
                results[run] = _run_worker(run, data, cache)
                print(f"repeat {repeat + 1}/{args.repeats} {run}: {json.dumps(results[run])}", flush=True)
            repeats.append(results)
        _summarise(record["results"], runs, repeats)
    print(json.dumps({key: record["results"][key] for key in ("summary", "ratios", "targets")}, indent=2))


def _summarise(report: dict, runs: list[str], repeats: list[dict[str, dict]]) -> None:
    """The medians over the repeats, the ratios and the targets, into ``report``."""
    summary: dict[str, dict] = {}
    for run in runs:
        rows = [results[run] for results in repeats]
        summary[run] = {
            key: _median([row[key] for row in rows])
            for key in ("examples_per_second", "median_step_seconds", "featurize_seconds", "peak_rss_mib")
        }
        if "vision" in rows[0]:
            summary[run]["vision"] = {key: _median([row["vision"][key] for row in rows]) for key in rows[0]["vision"]}
    ratios = {}

    def ratio(name: str, numerator: str, denominator: str) -> None:
        if numerator in runs and denominator in runs:
            per_repeat = [r[numerator]["examples_per_second"] / r[denominator]["examples_per_second"] for r in repeats]
            ratios[name] = {"median": _median(per_repeat), "per_repeat": [round(v, 4) for v in per_repeat]}

    ratio("tpm_cached_over_text", "tpm_cached", "text")
    ratio("tpm_cached_over_tpm_nocache", "tpm_cached", "tpm_nocache")
    ratio("tpm_finetuned_over_text", "tpm_finetuned", "text")
    report.update(
        {
            "what": "SYNTHETIC MNER sample, offline encoders (minilm + efficientnet-lite0), training throughput at batch 16",
            "data": {"posts": 600, "seed": 13, "train_posts": repeats[0][runs[0]]["posts"]},
            "runs": {
                "text": "BERT-CRF text only (configs/synthetic/bert_crf.yaml)",
                "tpm_cached": "TPM-MI, frozen EfficientNet-Lite0, features from the warm feature cache (configs/synthetic/tpm_mi.yaml)",
                "tpm_nocache": "TPM-MI, frozen EfficientNet-Lite0, cache off: pixels in every batch, the frozen encoder "
                "runs forward (no gradient) at every step",
                "tpm_finetuned": "TPM-MI, EfficientNet-Lite0 fine-tuned end to end (freeze_vision: false)",
            },
            "summary": summary,
            "ratios": ratios,
            "targets": {
                "tpm_cached_over_text >= 0.75": ratios.get("tpm_cached_over_text", {}).get("median", 0) >= 0.75,
                "tpm_cached_over_tpm_nocache >= 5": ratios.get("tpm_cached_over_tpm_nocache", {}).get("median", 0) >= 5,
                "tpm_cached peak RSS < 3 GiB": summary.get("tpm_cached", {}).get("peak_rss_mib", 1e9) < 3 * 1024,
            },
            "per_repeat": repeats,
        }
    )


if __name__ == "__main__":
    run_main(main)
