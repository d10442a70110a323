"""Trainer callbacks: progress bars in examples per second, epoch timing, and the run's log file.

They replace transformers' own ProgressCallback/PrinterCallback (whose bars count steps and whose
printer writes raw dicts): training and evaluation bars count examples, and every log entry
(loss, learning rate, dev scores per epoch) goes to ``train.log`` as one JSON line.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import TrainerCallback

logger = logging.getLogger("mmie.training")

# Off a terminal (a log file, CI, a pipe) each redraw of the dev bar, which tqdm draws one line below
# the train bar, adds lines: there the dev bar is left out (the "epoch N: dev ..." line reports each
# evaluation) and the train bar is redrawn every 10 s.
REDRAW_SECONDS_OFF_TERMINAL = 10.0


def _on_terminal(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class ExamplesProgressCallback(TrainerCallback):
    """tqdm bars for training and evaluation, counting examples (so the rate reads examples/s)."""

    def __init__(self, train_examples: int, stream: Any = None) -> None:
        self.train_examples = train_examples
        self.stream = stream if stream is not None else sys.stderr
        self.on_terminal = _on_terminal(self.stream)
        self.train_bar: tqdm | None = None
        self.eval_bar: tqdm | None = None
        # Wall time of each training epoch, evaluation and checkpointing excluded (they run after
        # on_epoch_end): what the benchmarks report as seconds per epoch.
        self.epoch_seconds: list[float] = []
        self._epoch_started: float | None = None
        # Evaluations and checkpoints inside an epoch (evals_per_epoch > 1) run between a step's end
        # and the next step's begin: that time is paused out of the epoch's.
        self._paused_seconds = 0.0
        self._paused_at: float | None = None

    def _resume_clock(self) -> None:
        if self._paused_at is not None:
            self._paused_seconds += time.perf_counter() - self._paused_at
            self._paused_at = None

    def _examples_per_step(self, args: Any) -> int:
        return args.train_batch_size * args.gradient_accumulation_steps * args.world_size

    def _examples_done(self, args: Any, global_step: int) -> int:
        """Examples seen after ``global_step`` optimizer steps (the last step of an epoch may be short)."""
        per_step = self._examples_per_step(args)
        steps_per_epoch = max(1, math.ceil(self.train_examples / per_step))
        epochs, steps = divmod(global_step, steps_per_epoch)
        return epochs * self.train_examples + steps * per_step

    def on_step_begin(self, args, state, control, **kwargs):
        self._resume_clock()
        # Opened at the first step, not at train begin: on resume the Trainer restores its step
        # count after on_train_begin.
        if self.train_bar is not None or not state.is_world_process_zero:
            return
        total = self.train_examples * int(args.num_train_epochs)
        done = min(total, self._examples_done(args, state.global_step))
        self.train_bar = tqdm(
            total=total,
            initial=done,
            unit="ex",
            desc="train",
            dynamic_ncols=True,
            file=self.stream,
            mininterval=0.1 if self.on_terminal else REDRAW_SECONDS_OFF_TERMINAL,
        )

    def on_step_end(self, args, state, control, **kwargs):
        if self.train_bar is not None:
            done = min(self.train_bar.total, self._examples_done(args, state.global_step))
            self.train_bar.update(max(0, done - self.train_bar.n))
        if self._epoch_started is not None and (control.should_evaluate or control.should_save):
            self._paused_at = time.perf_counter()

    def on_epoch_begin(self, args, state, control, **kwargs):
        self._epoch_started = time.perf_counter()
        self._paused_seconds, self._paused_at = 0.0, None

    def on_epoch_end(self, args, state, control, **kwargs):
        self._resume_clock()
        if self._epoch_started is not None:
            self.epoch_seconds.append(time.perf_counter() - self._epoch_started - self._paused_seconds)
            self._epoch_started = None

    def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
        if not state.is_world_process_zero or eval_dataloader is None or not self.on_terminal:
            return
        if self.eval_bar is None:
            total = len(eval_dataloader.dataset) if hasattr(eval_dataloader, "dataset") else None
            self.eval_bar = tqdm(total=total, unit="ex", desc="dev", leave=False, dynamic_ncols=True, file=self.stream)
        step = min(args.eval_batch_size, (self.eval_bar.total or 1 << 62) - self.eval_bar.n)
        self.eval_bar.update(step)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if self.eval_bar is not None:
            self.eval_bar.close()
            self.eval_bar = None
        if metrics and state.is_world_process_zero:
            shown = {key[5:]: value for key, value in metrics.items() if key in ("eval_f1", "eval_loss")}
            message = ", ".join(f"{key} {value:.4f}" for key, value in shown.items())
            # stderr, like the bars: stdout stays for results
            epoch = f"{state.epoch:.0f}" if abs(state.epoch - round(state.epoch)) < 1e-3 else f"{state.epoch:.2f}"
            tqdm.write(f"epoch {epoch}: dev {message}", file=self.stream)

    def on_train_end(self, args, state, control, **kwargs):
        if self.train_bar is not None:
            self.train_bar.close()
            self.train_bar = None


class EvaluateWithinEpochCallback(TrainerCallback):
    """Dev evaluation and a checkpoint ``evals_per_epoch - 1`` times inside each epoch, evenly spaced.

    The epoch strategy evaluates at each epoch's end; this adds the points in between, so model
    selection on dev (load_best_model_at_end) also sees the weights between two epoch ends: dev F1
    of a fine-tuned encoder moves by a point or more within one epoch.
    """

    def __init__(self, evals_per_epoch: int) -> None:
        self.evals_per_epoch = evals_per_epoch
        self._rng_state: torch.Tensor | None = None

    def inner_points(self, steps_per_epoch: int) -> set[int]:
        """Steps inside an epoch (1 .. steps_per_epoch - 1) after which to evaluate."""
        share = steps_per_epoch / self.evals_per_epoch
        return {round(share * index) for index in range(1, self.evals_per_epoch)} - {0, steps_per_epoch}

    def on_step_end(self, args, state, control, **kwargs):
        epochs = math.ceil(args.num_train_epochs)
        if state.max_steps <= 0 or state.max_steps % epochs:
            return  # a max_steps run has no epochs to divide
        steps_per_epoch = state.max_steps // epochs
        if state.global_step % steps_per_epoch in self.inner_points(steps_per_epoch):
            control.should_evaluate = True
            control.should_save = True
            # Each evaluation's DataLoader draws its base seed from the global CPU generator, which
            # would shift every later dropout mask and shuffle: put it back after the evaluation
            # (before the checkpoint records it), so evaluating more often changes the selection,
            # never the training.
            self._rng_state = torch.get_rng_state()

    def on_evaluate(self, args, state, control, **kwargs):
        if self._rng_state is not None:
            torch.set_rng_state(self._rng_state)
            self._rng_state = None


class LogFileCallback(TrainerCallback):
    """Every Trainer log entry, as a JSON line, into the ``mmie.training`` logger (train.log)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and state.is_world_process_zero:
            entry = {"step": state.global_step, "epoch": round(state.epoch or 0, 4), **logs}
            logger.info("log %s", json.dumps(entry, default=str))
