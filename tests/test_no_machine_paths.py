"""No absolute path of a machine anywhere in the repository: code, tests, docs, configs and results
name files relative to the repository (or find them from it), so they mean the same on every clone."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# A path that starts at a machine's root folder for work, scratch or a user's home: work, tmp, root,
# home/<user> or Users/<user> right under the root (not "~/.cache", not "a/tmp/b"). The examples
# below are built at run time, so that this file does not name such a path itself.
MACHINE_PATH = re.compile(r"(?<![\w.~/-])/(?:work|tmp|root|home/[^/\s\"']+|Users/[^/\s\"']+)/")


def tracked_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [ROOT / name for name in listed.decode().split("\0") if name]


def test_the_pattern_finds_machine_paths_and_nothing_else():
    r = "/"
    found = [f"{r}work/main/x", f"cd {r}tmp/run", f'"{r}root/.cache/a"', f"{r}home/alice/data", f"({r}Users/bob/x)"]
    assert all(MACHINE_PATH.search(text) for text in found)
    fine = ["~/.cache/mmie", "runs/tmp/x", "../shared/x", "https://example.org/work/x", "/usr/bin/chromium"]
    assert not any(MACHINE_PATH.search(text) for text in fine), [t for t in fine if MACHINE_PATH.search(t)]


def test_no_tracked_text_file_names_an_absolute_path_of_a_machine():
    files = tracked_files()
    assert len(files) > 100 and ROOT / "pyproject.toml" in files
    hits = []
    for path in files:
        if not path.is_file():  # deleted in the work tree, not yet committed
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:  # binary (weights, images)
            continue
        for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
            if MACHINE_PATH.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:120]}")
    assert not hits, "\n".join(hits)
