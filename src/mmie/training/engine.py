"""Train one experiment with ``transformers.Trainer``: the run folder, model selection, resume.

    result = mmie.training.train("configs/twitter2017/bert_crf.yaml",
                                 overrides=["data.train=my/train.txt"], output_dir="runs/crf")
    result.metrics["dev"]["f1"], result.model_dir

The Trainer does the engineering (devices, mixed precision, distributed runs, checkpoints, RNG
state, TensorBoard); this module only sets it up. A run folder holds:

    config.yaml      the resolved config (every default written out)
    train.log        what happened: data sizes, labels, each log entry, final scores
    checkpoints/     the Trainer's checkpoint-<step> folders (deleted at the end unless
                     training.keep_checkpoints; their training_args.bin is a pickle the Trainer
                     writes and never reads back; their rng/optimizer states are loaded by the
                     Trainer itself with torch.load(weights_only=True))
    model/           the selected model (mmie.load_model), no pickle in it
    metrics.json     {"dev": {...}, "test": {...}, "data": {split: fingerprint}}, scored by the same
                     code as `mmie evaluate`; "data" holds each split's path, sha256 and the known
                     release it is (mmie.data.releases). Written last: a run is finished when it exists.
    predictions/     dev.jsonl, test.jsonl: the selected model's predictions (the paired
                     significance tests of `mmie report` read test.jsonl)
    summary.json     training statistics: best step, epoch times, examples/s
    tensorboard/     TensorBoard events, with --report-to tensorboard

Model selection: evaluated on dev after every epoch, the best dev F1 is kept (the papers' "select
the model that performs best on the development set"). Without a dev file the last epoch is kept.

Distributed runs (``torchrun --nproc_per_node N -m mmie.cli train ...`` or ``accelerate launch``):
the Trainer shards the batches (``training.batch_size`` is per process: keep the global batch by
dividing it by N); only the main process (``RANK`` 0) prepares the run folder and writes the log,
the model, the predictions and metrics.json, each atomically (docs/sweeps.md).

Interruption: the installed Trainer (transformers 5.x) writes a checkpoint folder in place
(``_save_checkpoint`` is not atomic) and writes ``trainer_state.json`` last. A kill during a save leaves a folder
without it; ``--resume`` therefore continues from the newest *complete* checkpoint (trainer state
and weights present) and deletes the incomplete ones. Resuming restores weights, optimizer,
scheduler, RNG states and the data order, so the run ends with the same scores as an
uninterrupted one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

import torch

from mmie.data import read_dataset
from mmie.data.releases import fingerprint
from mmie.data.sampling import sample_records
from mmie.data.schema import ENTITY_TYPES, NO_RELATION
from mmie.errors import ConfigError, DataError
from mmie.evaluation.metrics import ner_scores, re_scores
from mmie.evaluation.predictions import PredictionWriter, score_predictions
from mmie.features.text import META_KEY
from mmie.inference.predict import Predictor, ner_tags
from mmie.inference.saving import save_model_folder
from mmie.io import atomic_path, write_atomic
from mmie.models.base import ExtractionModel
from mmie.models.registry import create_model, create_processor, create_vocabulary
from mmie.training.callbacks import EvaluateWithinEpochCallback, ExamplesProgressCallback, LogFileCallback
from mmie.training.config import ExperimentConfig, load_config
from mmie.training.run_folder import (
    CHECKPOINTS,
    add_log_file,
    last_complete_checkpoint,
    prepare_run_dir,
    remove_log_file,
)

logger = logging.getLogger("mmie.training")


@dataclass
class RunResult:
    run_dir: Path
    model_dir: Path
    metrics: dict  # {"dev": {...}, "test": {...}}
    summary: dict
    config: ExperimentConfig


# ----------------------------------------------------------------------------------- data


def sample_train_split(config: ExperimentConfig, records: list) -> list:
    """The low-resource sample of the training split that ``data.sample_fraction`` / ``sample_per_label`` ask for."""
    data = config.data
    if data.sample_fraction is None and data.sample_per_label is None:
        return records
    seed = data.sample_seed if data.sample_seed is not None else config.training.seed
    sample = sample_records(records, fraction=data.sample_fraction, per_label=data.sample_per_label, seed=seed)
    how = (
        f"fraction {data.sample_fraction}" if data.sample_fraction is not None else f"{data.sample_per_label} per label"
    )
    logger.info("data.train: sampled %d of %d records (%s, seed %d)", len(sample), len(records), how, seed)
    return sample


@overload
def read_split(config: ExperimentConfig, key: Literal["train"]) -> list: ...  # data.train is required
@overload
def read_split(config: ExperimentConfig, key: str) -> list | None: ...
def read_split(config: ExperimentConfig, key: str) -> list | None:
    path = getattr(config.data, key)
    if path is None:
        return None
    dataset = read_dataset(path, format=config.data.format)
    if dataset.task != config.task:
        raise ConfigError(f"data.{key}: {path} is a {dataset.task} dataset but the task is {config.task}")
    if not dataset.records:
        raise ConfigError(f"data.{key}: {path} has no records")
    logger.info("data.%s: %s (%s), %d records", key, path, dataset.format, len(dataset.records))
    return list(dataset.records)


_TAG_PREFIXES = "BIES"


def label_set(task: str, *splits: list | None) -> list[str]:
    """The labels a model predicts, in a fixed order: NER ``O`` then ``B-``/``I-`` per type
    (PER, LOC, ORG, MISC first); RE ``None`` then the relations, sorted."""
    records = [record for split in splits if split for record in split]
    if task == "ner":
        tags = {tag for post in records for tag in post.tags or ()} - {"O"}
        types = {tag[2:] for tag in tags}
        ordered = [t for t in ENTITY_TYPES if t in types] + sorted(types - set(ENTITY_TYPES))
        prefixes = {tag[0] for tag in tags} | {"B", "I"}
        return ["O"] + [f"{p}-{t}" for t in ordered for p in _TAG_PREFIXES if p in prefixes]
    relations = {str(instance.label) for instance in records if instance.label is not None}
    return [NO_RELATION] + sorted(relations - {NO_RELATION})


class FeatureDataset(torch.utils.data.Dataset):
    def __init__(self, features: list[dict]) -> None:
        self.features = features

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> dict:
        return self.features[index]


def is_main_process() -> bool:
    """True unless this is a non-zero rank of a distributed launch (torchrun and accelerate set RANK)."""
    return int(os.environ.get("RANK", "0")) == 0


def data_fingerprints(config: ExperimentConfig) -> dict:
    """``{split: {"path", "sha256", "release", ...}}`` of the config's data files (metrics.json "data")."""
    return {
        split: fingerprint(path)
        for split in ("train", "dev", "test")
        if (path := getattr(config.data, split)) is not None
    }


def write_predictions(path: Path, predictions: list[dict]) -> None:
    """A prediction file written beside its destination and moved into place (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # PredictionWriter opens its file by name, so it gets a temporary path rather than a handle.
    with atomic_path(path) as staging, PredictionWriter(staging) as writer:
        for prediction in predictions:
            writer.write(prediction)


# --------------------------------------------------------------------------------- train


def train(
    config: ExperimentConfig | str | Path | dict,
    output_dir: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    resume: bool = False,
    *,
    overwrite: bool = False,
    report_to: list[str] | None = None,
) -> RunResult:
    """Train the experiment ``config`` (a YAML path, a mapping or a config) into a run folder."""
    config = load_config(config, overrides)
    updates: dict[str, Any] = {}
    if report_to is not None:
        updates["training"] = config.training.model_copy(update={"report_to": list(report_to)})
    run_dir = Path(output_dir or config.output_dir or Path("runs") / (config.name or config.model.name))
    config = config.model_copy(update={**updates, "output_dir": run_dir})
    # Re-validate: report_to values and the output folder go through the same checks as the file.
    config = load_config(config.model_dump(mode="json"))

    if resume and (run_dir / "metrics.json").is_file() and (run_dir / "model").is_dir():
        prepare_run_dir(run_dir, config, resume=True, overwrite=False)
        logger.info("%s: the run is already complete", run_dir)
        return _finished_result(run_dir, config)
    if not is_main_process():
        # The other ranks of a distributed run only train: rank 0 owns the run folder.
        return _run(config, run_dir, resume)
    prepare_run_dir(run_dir, config, resume, overwrite)
    handler = add_log_file(run_dir / "train.log")
    try:
        return _run(config, run_dir, resume)
    except KeyboardInterrupt:
        logger.warning("interrupted; `mmie train ... --output-dir %s --resume` continues the run", run_dir)
        raise
    finally:
        remove_log_file(handler)


def _finished_result(run_dir: Path, config: ExperimentConfig) -> RunResult:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    return RunResult(run_dir, run_dir / "model", metrics, summary, config)


# ----------------------------------------------------------------------------- the Trainer


def _trainer_class() -> type:
    from transformers import Trainer

    class MmieTrainer(Trainer):
        """The Trainer with two learning rates: the pretrained encoder's and the new layers'."""

        def __init__(self, *args: Any, head_learning_rate: float | None = None, **kwargs: Any) -> None:
            self.head_learning_rate = head_learning_rate
            super().__init__(*args, **kwargs)

        def _get_eval_sampler(self, eval_dataset: Any) -> torch.utils.data.Sampler | None:
            # Dev scoring pairs predictions with features by position: keep evaluation in order
            # even when training batches are grouped by length.
            return torch.utils.data.SequentialSampler(eval_dataset)

        def create_optimizer(self, model: Any = None) -> torch.optim.Optimizer:
            if self.optimizer is None:
                model = self.model if model is None else model
                decay = set(self.get_decay_parameter_names(model))
                head_lr = self.head_learning_rate or self.args.learning_rate
                groups: dict[tuple[bool, bool], list] = {}
                for name, parameter in model.named_parameters():
                    if parameter.requires_grad:
                        groups.setdefault((model.is_head_parameter(name), name in decay), []).append(parameter)
                param_groups = [
                    {
                        "params": parameters,
                        "lr": head_lr if is_head else self.args.learning_rate,
                        "weight_decay": self.args.weight_decay if decays else 0.0,
                    }
                    for (is_head, decays), parameters in sorted(groups.items())
                ]
                settings: dict[str, Any] = {
                    "lr": self.args.learning_rate,
                    "betas": (self.args.adam_beta1, self.args.adam_beta2),
                    "eps": self.args.adam_epsilon,
                }
                try:
                    # The fused kernel: on CPU the update of a MiniLM takes ~35 ms instead of ~230.
                    self.optimizer = torch.optim.AdamW(param_groups, fused=True, **settings)
                except (RuntimeError, ValueError):  # a device or dtype without the fused kernel
                    self.optimizer = torch.optim.AdamW(param_groups, **settings)
            return self.optimizer

    return MmieTrainer


def _selection_metrics(task: str, labels: list[str], features: list[dict], records: list) -> Any:
    """compute_metrics for the Trainer: dev F1 (and P/R) from the gathered predictions."""

    def compute(evaluation: Any) -> dict[str, float]:
        predictions = evaluation.predictions
        if task == "ner":
            gold = [list(post.tags) for post in records]
            pred = [ner_tags(row, feature[META_KEY], labels) for row, feature in zip(predictions, features)]
            scores = ner_scores(gold, pred)
        else:
            gold_labels = [str(instance.label) for instance in records]
            scores = re_scores(gold_labels, [labels[int(i)] for i in predictions.argmax(-1)])
        return {key: float(scores[key]) for key in ("f1", "precision", "recall")}

    return compute


def _ignored_outputs(model: ExtractionModel) -> list[str]:
    """Every output field but the one model selection reads (``selected_output``): the Trainer then
    gathers that field alone, by name (NER: the decoded ``predictions``; RE: the ``logits``)."""
    names = [field.name for field in dataclasses.fields(model.output_class)]  # type: ignore[arg-type]  # ModelOutputs are dataclasses
    if model.selected_output not in names:
        raise TypeError(f"{type(model).__name__}.selected_output {model.selected_output!r} is not an output field")
    return [name for name in names if name not in ("loss", model.selected_output)]


def _has_accelerator() -> bool:
    """A device the Trainer picks by itself when ``use_cpu`` is off."""
    xpu = getattr(torch, "xpu", None)
    return (
        torch.cuda.is_available() or torch.backends.mps.is_available() or bool(xpu is not None and xpu.is_available())
    )


def _cpu_computes_bf16() -> bool:
    """Whether this CPU has the instructions (AVX-512 or AMX on x86, bf16 on Arm) that make the CPU's bf16
    autocast fast; without them oneDNN emulates it. Unknown (an older torch): assumed yes."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return True if check is None else bool(check())


def _training_arguments(config: ExperimentConfig, run_dir: Path, has_dev: bool) -> Any:
    from transformers import TrainingArguments

    settings = config.training
    # Without a GPU the Trainer only runs on the CPU when told so (use_cpu): bf16 is then the CPU's
    # autocast (fast where the CPU has bf16 instructions); fp16 has no CPU autocast in the Trainer.
    on_cpu = settings.device == "cpu" or not _has_accelerator()
    if on_cpu and settings.mixed_precision == "fp16":
        raise ConfigError("training.mixed_precision: fp16 needs a CUDA GPU and this run is on the CPU; use bf16 or no")
    if on_cpu and settings.mixed_precision == "bf16" and not _cpu_computes_bf16():
        warnings.warn(
            "training.mixed_precision: bf16 on a CPU without bf16 instructions "
            f"({torch.backends.cpu.get_cpu_capability()}) is emulated, many times slower than fp32; use no",
            RuntimeWarning,
            stacklevel=2,
        )
    return TrainingArguments(
        output_dir=str(run_dir / CHECKPOINTS),
        num_train_epochs=settings.epochs,
        per_device_train_batch_size=settings.batch_size,
        per_device_eval_batch_size=settings.eval_batch_size,
        learning_rate=settings.learning_rate,
        weight_decay=settings.weight_decay,
        warmup_steps=settings.warmup_ratio,  # a float < 1 is a ratio of the training steps
        lr_scheduler_type="linear",
        max_grad_norm=settings.max_grad_norm,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        train_sampling_strategy="group_by_length" if settings.group_by_length else "random",
        seed=settings.seed,
        fp16=settings.mixed_precision == "fp16",
        bf16=settings.mixed_precision == "bf16",
        use_cpu=on_cpu,
        eval_strategy="epoch" if has_dev else "no",
        save_strategy="epoch",
        save_total_limit=2,  # the best and the last (the Trainer never deletes the best)
        load_best_model_at_end=has_dev,
        metric_for_best_model="f1" if has_dev else None,
        greater_is_better=True if has_dev else None,
        logging_strategy="steps",
        logging_steps=settings.logging_steps,
        report_to=list(settings.report_to) or "none",
        disable_tqdm=True,  # ExamplesProgressCallback draws the bars
        remove_unused_columns=False,  # features are model inputs already
        label_names=["labels"],
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
    )


def _run(config: ExperimentConfig, run_dir: Path, resume: bool) -> RunResult:
    from transformers import PrinterCallback, ProgressCallback, set_seed

    logger.info("run folder %s, config:\n%s", run_dir, config.to_yaml())
    fingerprints = data_fingerprints(config)
    for split, entry in fingerprints.items():
        logger.info("data.%s sha256 %s (%s)", split, entry["sha256"], entry["release"] or "not a known release")
    train_records = read_split(config, "train")
    dev_records = read_split(config, "dev")
    test_records = read_split(config, "test")
    labels = label_set(config.task, train_records, dev_records)  # of the full split: a sample keeps them all
    train_records = sample_train_split(config, train_records)
    logger.info("%d labels: %s", len(labels), " ".join(labels))

    set_seed(config.training.seed)  # the new layers' initial weights depend on it
    # The encoder's tokenizer, or (word-level models) the vocabulary of the training split as trained on
    tokenizer = create_vocabulary(config.model, train_records)
    processor = create_processor(config.model, tokenizer, labels, images=config.data.images)
    model = create_model(processor.config, labels, tokenizer=tokenizer)
    with _in_split(config, "train"):
        train_features = processor.featurize_training(train_records)
    # Featurized once: the Trainer's dev evaluations and the final dev predictions both read these.
    with _in_split(config, "dev"):
        dev_features = processor.featurize(dev_records) if dev_records else None

    checkpoint = last_complete_checkpoint(run_dir / CHECKPOINTS) if resume else None
    if resume:
        logger.info("resuming from %s", checkpoint or "the start (no complete checkpoint yet)")
    progress = ExamplesProgressCallback(len(train_features))
    # Before the progress callback: it pauses its epoch clock for the evaluations this one asks for.
    evals_per_epoch = config.training.evals_per_epoch
    within_epoch = [EvaluateWithinEpochCallback(evals_per_epoch)] if dev_features and evals_per_epoch > 1 else []
    trainer = _trainer_class()(
        model=model,
        args=_training_arguments(config, run_dir, dev_records is not None),
        train_dataset=FeatureDataset(train_features),
        eval_dataset=FeatureDataset(dev_features) if dev_features else None,
        data_collator=processor.collator,
        processing_class=tokenizer,
        compute_metrics=(
            _selection_metrics(config.task, labels, dev_features, dev_records) if dev_features and dev_records else None
        ),
        head_learning_rate=config.training.head_learning_rate,
        callbacks=[*within_epoch, progress, LogFileCallback()],
    )
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    _point_tensorboard_at(trainer, run_dir / "tensorboard")
    output = trainer.train(
        resume_from_checkpoint=str(checkpoint) if checkpoint else None, ignore_keys_for_eval=_ignored_outputs(model)
    )
    if not is_main_process():
        return RunResult(run_dir, run_dir / "model", {}, {}, config)

    # The Trainer has loaded the best checkpoint's weights (load_best_model_at_end).
    model_dir = save_model_folder(model, tokenizer, run_dir / "model")
    predictor = Predictor(model, processor)
    batch_size = config.training.eval_batch_size
    metrics: dict[str, Any] = {}
    for split, records, features in (("dev", dev_records, dev_features), ("test", test_records, None)):
        if records:
            with _in_split(config, split):
                predictions = list(
                    predictor.iter_predictions(records, batch_size, description=split, features=features)
                )
            write_predictions(run_dir / "predictions" / f"{split}.jsonl", predictions)
            metrics[split] = score_predictions(records, predictions, task=config.task)
    metrics["data"] = fingerprints
    summary = _summary(trainer, output.metrics, progress.epoch_seconds, len(train_features))
    write_atomic(run_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    write_atomic(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    for split, scores in _scored_splits(metrics).items():
        logger.info(
            "%s: f1 %.4f precision %.4f recall %.4f", split, scores["f1"], scores["precision"], scores["recall"]
        )
    if not config.training.keep_checkpoints:  # (rank 0 only: the others returned above)
        shutil.rmtree(run_dir / CHECKPOINTS, ignore_errors=True)
    return RunResult(run_dir, model_dir, metrics, summary, config)


@contextlib.contextmanager
def _in_split(config: ExperimentConfig, split: str) -> Iterator[None]:
    """A record's DataError from the featurizers (``record 4: images: ...``) names the split's file too."""
    try:
        yield
    except DataError as error:
        if error.path is not None:
            raise
        raise DataError(error.message, path=getattr(config.data, split), field=error.field) from None


def _scored_splits(metrics: dict) -> dict:
    """The dev/test scores of a metrics.json (without its "data" fingerprints)."""
    return {split: scores for split, scores in metrics.items() if split in ("dev", "test")}


def _point_tensorboard_at(trainer: Any, folder: Path) -> None:
    """TensorBoard events go to <run>/tensorboard (not inside checkpoints/, which is deleted)."""
    for callback in trainer.callback_handler.callbacks:
        if type(callback).__name__ == "TensorBoardCallback":
            callback.logging_dir = str(folder)


def _summary(trainer: Any, train_metrics: dict, epoch_seconds: list[float], train_examples: int) -> dict:
    state = trainer.state
    best = state.best_model_checkpoint
    return {
        "best_step": int(Path(best).name.split("-")[-1]) if best else state.global_step,
        "best_dev_f1": state.best_metric,
        "global_step": state.global_step,
        "world_size": trainer.args.world_size,  # processes of a distributed run (torchrun / accelerate)
        "epochs": state.epoch,
        # dev score after each evaluation (every epoch, or evals_per_epoch times per epoch), so
        # "reached F1 x by epoch n" can be read off
        "dev_history": [
            {"epoch": round(entry["epoch"], 3), "step": entry["step"], "f1": entry["eval_f1"]}
            for entry in state.log_history
            if "eval_f1" in entry
        ],
        "train_examples": train_examples,
        "train_runtime": train_metrics.get("train_runtime"),
        "train_samples_per_second": train_metrics.get("train_samples_per_second"),
        # Epochs timed in this process (after a resume, only the resumed ones), evaluation excluded.
        "epoch_seconds": [round(seconds, 3) for seconds in epoch_seconds],
        "train_examples_per_second": (
            round(train_examples * len(epoch_seconds) / sum(epoch_seconds), 2) if epoch_seconds else None
        ),
    }
