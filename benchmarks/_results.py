"""How every benchmark script writes benchmarks/results/<script>.json: runs appended, never rewritten.

    {"script": "benchmarks/focalmre_speed.py",
     "runs": [{"started": ..., "finished": ..., "status": "finished" | "stopped",
               "command": ["python", "benchmarks/focalmre_speed.py", "--smoke"],
               "machine": {"cpus", "load_average", "torch_version", "torch_threads", "platform", "python"},
               "settings": {...what was run...}, "results": {...}, "converted": null}, ...]}

A script opens a run with :func:`recorded_run`, fills ``run["results"]`` as figures come in, and the
run is appended to the file when the block ends: as ``finished``, or as ``stopped`` when it ends by
Ctrl-C or SIGTERM (the figures it had so far are kept, the stop is re-raised). A finished run's
``results`` must match the script's results model below; a stopped run's may be partial.

``converted`` is set only on runs written before this layout and carried over by a one-off
transformation (it says which): their machine holds what those scripts recorded then.

Paths in a run are relative to the repository (or to the data folder the settings name), never
absolute: tests/test_no_machine_paths.py scans every results file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, model_validator

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Machine(_Strict):
    cpus: int
    load_average: list[float] = Field(min_length=3, max_length=3)  # 1, 5, 15 min, at the start of the run
    torch_version: str
    torch_threads: int
    platform: str
    python: str


# ----------------------------------------------------------------------- each script's results


class TextBaselineFigures(_Strict):
    model: str
    encoder: str
    train_file: str  # relative to settings.data_dir
    dev_file: str
    train_examples: int
    epochs: int
    best_step: int | None
    best_epoch: float | None = None
    dev_f1_by_epoch: list[float] | None = None  # None only on converted runs of an older script
    dev_f1_by_evaluation: dict[str, float] | None = None
    dev_f1: float
    dev_precision: float
    dev_recall: float
    dev_accuracy: float | None = None
    # cover packing: dev micro-F1 with every pair read from its head (W) and from its tail (W')
    dev_f1_by_side: dict[str, float] | None = None
    seconds_per_epoch: float
    train_examples_per_second: float
    inference_examples_per_second: float
    peak_rss_mb: float
    hyper_parameters: dict[str, Any]
    overrides: list[str] | None = None
    note: str | None = None  # only on converted runs: what the run was, said by its author then

    @model_validator(mode="after")
    def _selected_epoch_is_the_best(self) -> TextBaselineFigures:
        if self.dev_f1_by_epoch and self.dev_f1_by_evaluation is None and self.dev_f1 != max(self.dev_f1_by_epoch):
            raise ValueError(f"dev_f1 {self.dev_f1} is not the best of dev_f1_by_epoch {self.dev_f1_by_epoch}")
        return self


class TextBaselinesResults(_Strict):
    models: dict[str, TextBaselineFigures]
    one_pass_vs_mtb: dict[str, Any] | None = None  # MTB and one-pass MTB trained in the same run
    mtb_levitated_entities_vs_mtb: dict[str, Any] | None = None  # the same, one pass with the entities' vectors
    mtb_levitated_text_entities_vs_mtb: dict[str, Any] | None = None  # the same, the text reading entity markers
    mtb_levitated_subject_vs_mtb: dict[str, Any] | None = None  # the same, one pass per head (packing: subject)
    mtb_levitated_cover_vs_mtb: dict[str, Any] | None = None  # the same, one pass per covering entity (cover)
    mtb_levitated_cover_ends_vs_mtb: dict[str, Any] | None = None  # the same, cover with start and end markers
    text_switches_vs_baseline: dict[str, Any] | None = None  # text-only switches beside BERT-CRF / MTB, same run


class SpeedRun(BaseModel):
    """One timed configuration of mre_speed.py's workers (``merge_repeats``): every rate and their median."""

    model_config = ConfigDict(extra="allow")
    examples_per_second: list[float] = Field(min_length=1)
    median_examples_per_second: float


class FocalMreSpeedResults(_Strict):
    what: str
    training: dict[str, SpeedRun]
    focalmre_vs_mtb: float
    target_met: bool


class MreSpeedResults(_Strict):
    what: str
    training: dict[str, SpeedRun]
    region_building: dict[str, Any]
    checks: dict[str, Any]


class CachePass(_Strict):
    seconds: float
    hits: int
    memory_hits: int
    misses: int
    recomputed_corrupt: int


class CacheFill(_Strict):
    images: int
    cold: CachePass
    warm: CachePass

    @model_validator(mode="after")
    def _cold_is_cold(self) -> CacheFill:
        if self.cold.hits or self.cold.memory_hits or self.cold.misses != self.images:
            raise ValueError(f"a cold pass encodes every image: {self.cold} for {self.images} images")
        if self.warm.misses:
            raise ValueError(f"a warm pass encodes nothing: {self.warm}")
        return self


class MnerSpeedResults(_Strict):
    what: str
    data: dict[str, Any]
    runs: dict[str, str]
    feature_cache_fill: CacheFill | None  # None only on a converted run whose "cold" pass was warm
    summary: dict[str, dict[str, Any]]
    ratios: dict[str, dict[str, Any]]
    targets: dict[str, bool]
    per_repeat: list[dict[str, dict[str, Any]]]


class ExtractSpeedResults(_Strict):
    benchmark: str
    data: str
    models: dict[str, Any]
    posts: int
    images: int
    posts_per_s: dict[str, float]
    single_post_p50_ms: float
    entities_per_post: float
    candidate_pairs_per_post: float
    text_tokens_warm_pass: dict[str, int]
    warm_over_ner_alone: float
    warm_over_ner_alone_per_repeat: list[float]
    target_warm_over_ner_alone: float
    # the pipeline with a one-pass RE model (--one-pass-re), same run; a list with several models
    one_pass: dict[str, Any] | list[dict[str, Any]] | None = None


class ExtractRayEngine(_Strict):
    seconds: float
    posts_per_s: float
    actors: int | None = None
    runtime_start_seconds: float | None = None


class ExtractRayResults(_Strict):
    benchmark: str
    data: str
    posts: int
    images: int
    in_process: ExtractRayEngine
    ray: ExtractRayEngine
    ray_over_in_process: float
    identical_output: bool | None = None  # the first run compared bytes only
    output_agreement: dict[str, Any] | None = None  # bytes, records but scores, the largest score gap
    in_process_torch_threads: int


class ServiceLoadBefore24(_Strict):
    """The one load figure the script wrote before the burst and long-post cases (converted runs)."""

    benchmark: str
    data: str
    requests: int
    concurrency: int
    errors: int
    latency_ms: dict[str, float]
    requests_per_s: float


class ServiceLoadCases(_Strict):
    """One entry per case that was run (``--cases``): load (per service mode since #23), overflow (64
    clients against the micro-batches), burst (50 maximum-size requests), long post."""

    data: str
    load: dict[str, Any] | None = None
    overflow: dict[str, Any] | None = None
    burst: dict[str, Any] | None = None
    long: dict[str, Any] | None = None


class ServiceLoadResults(RootModel[ServiceLoadCases | ServiceLoadBefore24]):
    pass


class SynthProbeResults(_Strict):
    what: str
    tasks: dict[str, dict[str, Any]]


RESULTS_MODELS: dict[str, type[BaseModel]] = {
    "text_baselines": TextBaselinesResults,
    "focalmre_speed": FocalMreSpeedResults,
    "mre_speed": MreSpeedResults,
    "mner_speed": MnerSpeedResults,
    "extract_speed": ExtractSpeedResults,
    "extract_ray": ExtractRayResults,
    "service_load": ServiceLoadResults,
    "synth_probe": SynthProbeResults,
}


class Run(_Strict):
    started: str | None  # None only on converted runs that did not record it
    finished: str | None
    status: Literal["finished", "stopped"]
    command: list[str] | None  # None only on converted runs that did not record it
    machine: dict[str, Any]
    settings: dict[str, Any]
    results: dict[str, Any]
    converted: str | None = None

    def check(self, script: str) -> None:
        """The machine and, for a finished run, the results match what ``script`` writes."""
        if self.converted is None:
            Machine.model_validate(self.machine)
            if self.started is None or self.finished is None:
                raise ValueError("a run records when it started and ended")
            if not self.command or self.command[:2] != ["python", f"benchmarks/{script}.py"]:
                raise ValueError(f"command {self.command} is not a run of benchmarks/{script}.py")
            if script == "mner_speed" and self.results.get("feature_cache_fill", "") is None:
                raise ValueError("a run of mner_speed.py measures the cold and warm feature cache fill")
        if self.status == "finished":
            RESULTS_MODELS[script].model_validate(self.results)


class ResultsFile(_Strict):
    script: str
    runs: list[Run] = Field(min_length=1)

    def check(self, name: str) -> None:
        if self.script != f"benchmarks/{name}.py":
            raise ValueError(f"{name}.json says it was written by {self.script}")
        for run in self.runs:
            run.check(name)


# ------------------------------------------------------------------------------------ writing


def machine() -> dict[str, Any]:
    import torch

    return Machine(
        cpus=os.cpu_count() or 0,
        load_average=[round(load, 2) for load in os.getloadavg()],
        torch_version=torch.__version__,
        torch_threads=torch.get_num_threads(),
        platform=platform.platform(),
        python=platform.python_version(),
    ).model_dump()


def relative(path: str | Path) -> str:
    """``path`` relative to the repository (``../shared/data/x`` for the data beside it)."""
    return os.path.relpath(Path(path).resolve(), REPO)


def mode_of(parser: Any, args: Any, keys: list[str], smoke: bool = False) -> str:
    """What was run: ``smoke``, ``default`` (every one of ``keys`` at the parser's default) or ``custom``."""
    if smoke:
        return "smoke"
    return "default" if all(getattr(args, key) == parser.get_default(key) for key in keys) else "custom"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def append_run(out: Path, run: dict[str, Any]) -> None:
    """Append ``run`` to the results file ``out`` (created when missing), checked first, written atomically."""
    name = out.stem
    script = f"benchmarks/{name}.py"
    document = json.loads(out.read_text(encoding="utf-8")) if out.is_file() else {"script": script, "runs": []}
    document["runs"].append(run)
    ResultsFile.model_validate(document).check(name)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(out.name + ".tmp")
    staging.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    os.replace(staging, out)


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def recorded_run(out: Path, settings: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A run of the calling script: yields the run dict (fill ``run["results"]``); appends it to ``out``
    when the block ends, as ``stopped`` on Ctrl-C / SIGTERM (then re-raised)."""
    script = Path(sys.argv[0]).resolve()
    # absolute paths in the arguments are recorded relative to the repository, as everywhere in results
    command = ["python", relative(script), *(relative(arg) if os.path.isabs(arg) else arg for arg in sys.argv[1:])]
    run: dict[str, Any] = {
        "started": _now(),
        "finished": None,
        "status": "stopped",
        "command": command,
        "machine": machine(),
        "settings": settings,
        "results": {},
        "converted": None,
    }
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        yield run
    except KeyboardInterrupt:  # stopped by hand or by SIGTERM: the partial run is kept, marked so
        _close(out, run, "stopped")
        raise
    else:
        _close(out, run, "finished")
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_main(main: Callable[[], None]) -> None:
    """Run a script's ``main``. A stop by Ctrl-C or SIGTERM, which :func:`recorded_run` has already
    appended as ``stopped`` and said so, ends with exit status 130 instead of a traceback."""
    try:
        main()
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def _close(out: Path, run: dict[str, Any], status: str) -> None:
    run["status"], run["finished"] = status, _now()
    append_run(out, run)
    print(f"{status}: appended to {relative(out)}", flush=True)
