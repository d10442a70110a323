"""`mmie extract --engine ray` (issue #23): a local Ray runtime of 2 CPUs, started once for this module,
runs the command on a small corpus with the tiny trained models of tests/extraction_models.py; its
results must be those of the in-process engine, record for record and byte for byte.

Each Ray run starts 2 model-holding actors (each loads the models), a few seconds on 2 cores: the
tests share runs where they can.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from extraction_models import synthetic_images

BATCH = ["--batch-size", "2"]
RAY = ["--engine", "ray", "--actors", "2", "--part-size", "4", *BATCH]


@pytest.fixture(scope="module")
def ray_runtime() -> Iterator[str]:
    """A local Ray runtime for this module: 2 CPUs, no dashboard, a small object store, its files in a
    temporary folder (short: Ray's socket paths must fit 107 bytes). Yields its address."""
    import ray

    folder = tempfile.mkdtemp(prefix="mmie-ray-test-")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.ERROR,
        object_store_memory=96 * 2**20,
        _temp_dir=folder,
    )
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        shutil.rmtree(folder, ignore_errors=True)


def write_corpus(folder: Path, images: Path) -> Path:
    """Ten posts: text only, 1-3 images, given entities, an id-less post, one over the entity limit.
    ``cut.jpg`` beside them is a cut-off image, for a post to break."""
    files = synthetic_images(images, 3)
    for k, source in enumerate(files):
        shutil.copy(source, folder / f"image{k}.jpg")
    (folder / "cut.jpg").write_bytes(files[0].read_bytes()[:300])
    posts = [
        {"id": "a", "text": "alice visited paris today", "images": ["image0.jpg"]},
        {"id": "b", "text": "bob met carol in rome", "images": ["image1.jpg", "image2.jpg"]},
        {"id": 7, "text": "dave visited tokyo"},
        {"text": "erin and frank visited paris", "images": ["image0.jpg", "image1.jpg", "image2.jpg"]},
        {"id": "e", "text": "alice met bob", "entities": [{"start": 0, "end": 5, "type": "PER"}]},
        {"id": "f", "text": "carol visited rome today", "images": ["image2.jpg"]},
        {"id": "g", "text": "x " * 3 + "visited", "entities": [{"start": 0, "end": 1, "type": "PER"}] * 33},
        {"id": "h", "text": "frank visited tokyo with erin", "images": ["image1.jpg"]},
        {"id": "i", "text": "bob visited paris"},
        {"id": "j", "text": "dave met alice in rome today", "images": ["image2.jpg", "image0.jpg"]},
    ]
    path = folder / "posts.jsonl"
    path.write_text("".join(json.dumps(post) + "\n" for post in posts), encoding="utf-8")
    return path


def models_args(models) -> list[str]:
    return ["--ner", str(models.ner), "--re", str(models.re)]


@pytest.fixture(scope="module")
def corpus(extraction_models, tmp_path_factory) -> tuple[Path, bytes]:
    """The corpus and its results by the in-process engine (the reference)."""
    folder = tmp_path_factory.mktemp("ray-corpus")
    posts = write_corpus(folder, extraction_models.images)
    out = folder / "in-process.jsonl"
    argv = ["extract", *models_args(extraction_models), "--input", str(posts), "--out", str(out), *BATCH]
    code, _, err = run_main(argv)
    assert code == 0, err
    return posts, out.read_bytes()


def run_main(argv: list[str]) -> tuple[int, str, str]:
    """``mmie ARGV`` in this process (so it uses the module's Ray runtime): exit code, stdout, stderr."""
    from mmie.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
        except SystemExit as done:
            code = int(done.code or 0)
    return code, out.getvalue(), err.getvalue()


def parts(out: Path) -> dict[str, int]:
    """The part files beside ``out``, by name, with their inode (a part written again gets a new one)."""
    return {path.name: path.stat().st_ino for path in sorted(Path(f"{out}.parts").glob("part-*.jsonl"))}


def test_a_cluster_run_of_the_cli_writes_the_in_process_results(ray_runtime, extraction_models, corpus, tmp_path):
    """As a user: `mmie extract --engine ray` in its own process, pointed at the running Ray by RAY_ADDRESS."""
    posts, expected = corpus
    out = tmp_path / "ray.jsonl"
    argv = ["extract", *models_args(extraction_models), "--input", str(posts), "--out", str(out), *RAY]
    environment = {**os.environ, "RAY_ADDRESS": ray_runtime}
    done = subprocess.run(
        [sys.executable, "-m", "mmie.cli", *argv], capture_output=True, text=True, env=environment, timeout=600
    )
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == expected  # the same records, in the input's order, byte for byte
    assert len(parts(out)) == 3 and (Path(f"{out}.parts") / "settings.json").exists()
    assert "wrote 10 results" in done.stdout and "1 of them error records" in done.stdout
    assert "3 parts computed, 0 written before" in done.stdout
    # Ray's own lines (INFO, warnings, progress bars) stay off the terminal: only our progress bar is there
    assert all(line.startswith("extract (ray)") for line in done.stderr.replace("\r", "\n").split("\n") if line)
    assert (Path(f"{out}.parts") / "ray.log").exists()


def test_parquet_in_and_out_hold_the_in_process_records(ray_runtime, extraction_models, corpus, tmp_path):
    import pyarrow
    import pyarrow.parquet

    from mmie.pipeline.corpus import read_results

    posts, expected = corpus
    rows = [json.loads(line) for line in posts.read_text().splitlines()]
    rows = [{**row, "id": str(row["id"])} if "id" in row else row for row in rows]  # a column has one type
    columns = ("id", "text", "images", "entities")  # a post without a field has a null there
    table = pyarrow.table({name: [row.get(name) for row in rows] for name in columns})
    source = posts.with_name("posts.parquet")
    pyarrow.parquet.write_table(table, source)
    out = tmp_path / "ray.parquet"
    argv = ["extract", *models_args(extraction_models), "--input", str(source), "--out", str(out), *RAY]
    code, stdout, err = run_main(argv)
    assert code == 0, err
    records = [json.loads(line) for line in expected.decode().splitlines()]
    assert read_results(out) == records
    assert pyarrow.parquet.ParquetFile(out).metadata.num_row_groups == 3  # one per part
    assert "wrote 10 results" in stdout


def test_an_interrupted_run_resumes_without_redoing_written_parts(ray_runtime, extraction_models, corpus, tmp_path):
    posts, expected = corpus
    folder = posts.parent
    broken = folder / "broken.jsonl"  # the same posts, but the sixth (second part) has a cut-off image
    lines = posts.read_text().splitlines()
    lines[5] = lines[5].replace("image2.jpg", "cut.jpg")
    broken.write_text("\n".join(lines) + "\n")
    out = tmp_path / "ray.jsonl"
    argv = ["extract", *models_args(extraction_models), "--input", str(broken), "--out", str(out), *RAY]
    code, _, err = run_main(argv)
    # the bad post stops the run, naming its file and line; its part is not written, nor is --out
    assert code == 2 and err.splitlines()[-1].startswith(f"error: {broken}:6: post f: images[0] (")
    assert "truncated image" in err and "Traceback" not in err
    # Parts come back in order, even from two actors: the first is written before the second's error
    # stops the run, whichever actor finished first.
    written = parts(out)
    assert not out.exists() and [name[:11] for name in written] == ["part-000000"]
    # a kill part-way through a write leaves a hidden temporary file: the rerun removes it
    leftover = Path(f"{out}.parts") / ".part-000001-0123456789abcdef.jsonl.x1y2.tmp"
    leftover.write_text('{"id": "e"')
    # the input is fixed: only that post's part changes, and only the missing parts are computed
    broken.write_text(posts.read_text())
    code, stdout, err = run_main(argv)
    assert code == 0, err
    assert "1 of 3 parts already written, 2 to go" in err
    assert "2 parts computed, 1 written before" in stdout
    after = parts(out)
    assert all(after[name] == inode for name, inode in written.items())  # the parts written before stay
    assert len(after) == 3 and not leftover.exists()
    assert out.read_bytes() == expected
    # a rerun of a finished run computes nothing (no Ray actors) and writes the same file
    code, stdout, err = run_main(argv)
    assert code == 0 and "0 parts computed, 3 written before" in stdout and out.read_bytes() == expected
    # other settings would give other records: refused, naming them
    code, _, err = run_main([*argv, "--include-none"])
    assert code == 2 and "other settings (include_none)" in err


def test_bad_input_is_named_before_any_work(extraction_models, tmp_path):
    """No Ray runtime is needed: the corpus is read and checked by the driver first."""
    import pyarrow
    import pyarrow.parquet

    posts = tmp_path / "posts.jsonl"
    posts.write_text('{"id": "a", "text": "alice visited paris"}\n\n{"id": "b", "text": \n')
    out = tmp_path / "out.jsonl"
    argv = ["extract", *models_args(extraction_models), "--input", str(posts), "--out", str(out), *RAY]
    code, _, err = run_main(argv)
    assert code == 2 and err.startswith(f"error: {posts}:3: record: not valid JSON")
    source = tmp_path / "posts.parquet"
    pyarrow.parquet.write_table(
        pyarrow.Table.from_pylist([{"id": "a", "text": "alice"}, {"id": "", "text": "b"}]), source
    )
    argv[argv.index(str(posts))] = str(source)
    code, _, err = run_main(argv)
    assert code == 2 and err == f"error: {source}:2: id: an id is a non-empty string, got ''\n"
    code, _, err = run_main([*argv, "--part-size", "3"])  # parts are whole model batches (of 2)
    assert code == 2 and "--part-size (3) must be a multiple of --batch-size (2)" in err
    source.write_bytes(b"not parquet at all")
    code, _, err = run_main(argv)
    assert code == 2 and err.startswith(f"error: {source}: cannot read the posts as Parquet") and "Traceback" not in err
    code, _, err = run_main(
        ["extract", *models_args(extraction_models), "--input", str(posts), "--out", str(tmp_path / "o.parquet")]
    )
    assert code == 2 and "Parquet results come from --engine ray" in err


def test_ray_is_imported_only_for_its_engine_and_its_absence_is_explained(extraction_models, tmp_path):
    """In a fresh process: the in-process engine never imports ray; without ray installed (its import
    blocked), --engine ray says how to install it."""
    posts = tmp_path / "posts.jsonl"
    posts.write_text('{"id": "a", "text": "alice visited paris"}\n')
    args = [*models_args(extraction_models), "--input", str(posts)]
    script = f"""
import contextlib, io, sys
from mmie.cli import main
args = {args!r}
main(["extract", *args, "--out", {str(tmp_path / "a.jsonl")!r}])
assert "ray" not in sys.modules, "the in-process engine imported ray"
sys.modules["ray"] = None  # as if the extra were not installed
err = io.StringIO()
with contextlib.redirect_stderr(err):
    try:
        main(["extract", *args, "--out", {str(tmp_path / "b.jsonl")!r}, "--engine", "ray"])
    except SystemExit as done:
        print("exit", done.code)
print(err.getvalue())
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "exit 2" in done.stdout and "--engine ray needs Ray: pip install 'mmie[ray]'" in done.stdout
    assert (tmp_path / "a.jsonl").exists() and not (tmp_path / "b.jsonl").exists()
