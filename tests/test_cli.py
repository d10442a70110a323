"""The command line as a user meets it: usage mistakes and data errors are one message, never a trace."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

MMIE = Path(sys.executable).with_name("mmie")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(MMIE), *args], capture_output=True, text=True, timeout=120)


def test_a_missing_option_is_a_usage_message_with_exit_2(tmp_path):
    done = run("data", "synth", "--out", str(tmp_path / "x"))
    assert done.returncode == 2
    assert "Missing option '--task'" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_malformed_record_is_one_line_naming_file_line_and_field(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text('{"id": 1, "text": ["a"], "images": ["x.jpg"], "label": ["B-FOO"]}\n')
    done = run("data", "stats", str(bad))
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"error: {bad}:1: label: unknown tag 'B-FOO' at position 0 "
        "(expected O or B-/I- with PER, LOC, ORG, MISC (OTHER and MIS are read as MISC))"
    )
