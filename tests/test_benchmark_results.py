"""Every file in benchmarks/results/ is what its script writes (benchmarks/_results.py): runs appended with
their command, machine and settings, each finished run's figures in the script's schema, a stopped run
kept and marked stopped."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import _results  # noqa: E402

RESULTS = sorted((ROOT / "benchmarks" / "results").glob("*.json"))
SCRIPTS = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if not p.name.startswith("_"))


def test_every_script_has_a_schema_and_appends_through_recorded_run():
    assert {p.stem for p in SCRIPTS} == set(_results.RESULTS_MODELS)
    for script in SCRIPTS:
        assert "recorded_run(args.out" in script.read_text(encoding="utf-8"), script.name


@pytest.mark.parametrize("path", RESULTS, ids=[p.name for p in RESULTS])
def test_each_results_file_matches_its_scripts_schema(path):
    assert (ROOT / "benchmarks" / f"{path.stem}.py").is_file(), f"no script writes {path.name}"
    document = _results.ResultsFile.model_validate_json(path.read_text(encoding="utf-8"))
    document.check(path.stem)
    for run in document.runs:
        if run.converted is None:
            assert run.command[:2] == ["python", f"benchmarks/{path.stem}.py"]
            _results.Machine.model_validate(run.machine)
        else:
            assert "before #25" in run.converted  # a carried-over run says so, and how it was carried over


def test_text_baselines_keep_no_figure_that_only_a_log_held():
    document = json.loads((ROOT / "benchmarks" / "results" / "text_baselines.json").read_text())
    for run in document["runs"]:
        for key, figures in run["results"]["models"].items():
            assert "log" not in figures.get("note", ""), key
            if figures.get("dev_f1_by_epoch") and "dev_f1_by_evaluation" not in figures:
                assert figures["dev_f1"] == max(figures["dev_f1_by_epoch"]), key


def test_a_run_is_appended_and_a_stopped_run_is_kept_as_stopped(tmp_path, monkeypatch):
    out = tmp_path / "synth_probe.json"
    monkeypatch.setattr(sys, "argv", [str(ROOT / "benchmarks" / "synth_probe.py"), "--posts", "12"])
    with _results.recorded_run(out, {"posts": 12}) as run:
        run["results"].update(what="probe", tasks={"mre": {"ambiguous_accuracy": {"all": 1.0}}})
    with pytest.raises(KeyboardInterrupt), _results.recorded_run(out, {"posts": 12}) as run:
        run["results"]["what"] = "probe"
        os.kill(os.getpid(), signal.SIGTERM)  # as `kill` or a job scheduler stops it
    runs = json.loads(out.read_text())["runs"]
    assert [r["status"] for r in runs] == ["finished", "stopped"]
    assert runs[0]["command"] == ["python", "benchmarks/synth_probe.py", "--posts", "12"]
    assert runs[1]["results"] == {"what": "probe"} and runs[1]["finished"] >= runs[1]["started"]
    assert signal.getsignal(signal.SIGTERM) is not _results._stop_on_sigterm  # the handler is put back
    # a finished run whose figures are not the script's schema is refused and the file is left alone
    before = out.read_bytes()
    with pytest.raises(ValidationError), _results.recorded_run(out, {}) as run:
        run["results"]["what"] = "no tasks"
    assert out.read_bytes() == before


def test_a_cold_cache_pass_that_found_the_cache_warm_is_refused():
    warm = {"seconds": 1.0, "hits": 10, "memory_hits": 0, "misses": 0, "recomputed_corrupt": 0}
    with pytest.raises(ValidationError, match="cold pass encodes every image"):
        _results.CacheFill.model_validate({"images": 10, "cold": warm, "warm": warm})
    cold = {**warm, "hits": 0, "misses": 10}
    _results.CacheFill.model_validate({"images": 10, "cold": cold, "warm": warm})


def test_every_one_pass_variant_of_text_baselines_has_its_comparison_in_the_schema():
    """A run beside MTB writes ``<variant>_vs_mtb``: a key the schema lacked lost a whole run at its end."""
    import ast

    tree = ast.parse((ROOT / "benchmarks" / "text_baselines.py").read_text(encoding="utf-8"))
    [variants] = [
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "ONE_PASS_VARIANTS" for t in node.targets)
    ]
    keys = {"one_pass_vs_mtb" if v == "mtb_levitated" else f"{v}_vs_mtb" for v in variants}
    assert keys <= set(_results.TextBaselinesResults.model_fields)
