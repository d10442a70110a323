"""``mmie data check``: verify a local copy of a dataset against its release and the papers.

    report = check_dataset("data/mnre", "mnre")
    report["ok"], report["problems"], report["splits"]["train"]["release"]

What is checked, per split: the file is where the release puts it (the names of DESIGN.md sec. 2,
MNRE's ``mnre_val .txt`` with its space included), it reads, its record count equals the papers'
(Table 1 of the dataset papers; posts for NER, instances for RE), and its sha256 names a known
release (:mod:`mmie.data.releases`). Then every image the records name is decoded once; missing and
undecodable ones are listed. A wrong layout is a :class:`~mmie.errors.DataError` naming the folder
and the files it expected; everything else is collected in the report (``problems`` make ``ok``
false, ``warnings`` do not).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mmie.data.releases import KNOWN_RELEASES, fingerprint
from mmie.errors import DataError, MmieError

SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class Layout:
    format: str
    files: dict[str, tuple[str, ...]]  # split -> candidate paths inside the folder, the release's first
    counts: dict[str, int]  # split -> the papers' number of posts (NER) or instances (RE)
    source: str  # where the counts come from
    images: tuple[tuple[str, ...], ...] = ()  # image folders (each: candidates); all are searched
    extras: tuple[str, ...] = ()  # other files or folders the release ships (their absence is a warning)
    per_split_images: bool = False  # MNRE: img_org/<split>/ holds the split's images
    unit: str = "posts"


def _candidates(*names: str, prefixes: tuple[str, ...] = ("",)) -> tuple[str, ...]:
    return tuple(prefix + name for name in names for prefix in prefixes)


_TWITTER_DIRS = ("", "data/")
LAYOUTS: dict[str, Layout] = {
    "twitter2015": Layout(
        "twitter",
        {split: _candidates(f"{name}.txt") for split, name in zip(SPLITS, ("train", "valid", "test"))},
        {"train": 4000, "dev": 1000, "test": 3257},
        "DESIGN.md sec. 2 (Zhang et al., 2018 splits)",
        images=(("images", "twitter2015_images"),),
    ),
    "twitter2017": Layout(
        "twitter",
        {split: _candidates(f"{name}.txt") for split, name in zip(SPLITS, ("train", "valid", "test"))},
        {"train": 3373, "dev": 723, "test": 723},
        "DESIGN.md sec. 2; MNER-MI paper Table 1 (# One Image of MNER-MI-Plus)",
        images=(("images", "twitter2017_images"),),
    ),
    "mner_mi": Layout(
        "mnermi",
        {s: _candidates(f"MNER-MI_{n}.txt", prefixes=("text/", "")) for s, n in zip(SPLITS, ("train", "val", "test"))},
        {"train": 6856, "dev": 860, "test": 860},
        "MNER-MI paper (001_), sec. 3 and Table 1",
        images=(("images",),),
    ),
    "mner_mi_plus": Layout(
        "mnermi",
        {s: _candidates(f"MNER-UNI_{n}.txt", prefixes=("text/", "")) for s, n in zip(SPLITS, ("train", "val", "test"))},
        {"train": 10229, "dev": 1583, "test": 1583},
        "MNER-MI paper (001_), sec. 3 and Table 1",
        images=(("images",), ("twitter2017_images",)),
    ),
    "mnre": Layout(
        "mnre",
        {
            "train": _candidates("mnre_train.txt", prefixes=("", "mnre_txt/")),
            # the release's name has a space; configs/README.md asks to rename it, so both are accepted
            "dev": _candidates("mnre_val .txt", "mnre_val.txt", prefixes=("", "mnre_txt/")),
            "test": _candidates("mnre_test.txt", prefixes=("", "mnre_txt/")),
        },
        {"train": 12247, "dev": 1624, "test": 1614},
        "DESIGN.md sec. 2 (Zheng et al., 2021)",
        images=(("img_org",),),
        per_split_images=True,
        unit="instances",
    ),
    "mre_mi": Layout(
        "mremi",
        {split: _candidates(f"{name}.txt") for split, name in zip(SPLITS, ("train", "val", "test"))},
        {"train": 13504, "dev": 4500, "test": 4500},
        "MRE-MI paper (000_), sec. 3.2",
        images=(("images",),),
        extras=("images_vg", "images_vg.pth"),
        unit="instances",
    ),
}
DATASETS = tuple(LAYOUTS)
_MNRE_IMAGE_SPLITS = {"train": "train", "dev": "val", "test": "test"}


@dataclass
class _Report:
    dataset: str
    folder: Path
    splits: dict = field(default_factory=dict)
    images: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "dataset": self.dataset,
            "folder": str(self.folder),
            "ok": not self.problems,
            "splits": self.splits,
            "images": self.images,
            "problems": self.problems,
            "warnings": self.warnings,
        }


def _find(folder: Path, candidates: tuple[str, ...]) -> Path | None:
    return next((folder / name for name in candidates if (folder / name).is_file()), None)


def _check_release(report: _Report, split: str, entry: dict, path: Path) -> None:
    known = KNOWN_RELEASES.get(entry["sha256"])
    has_known = any(release.dataset == report.dataset for release in KNOWN_RELEASES.values())
    if known is None:
        if has_known:
            report.warnings.append(
                f"{path}: sha256 {entry['sha256'][:12]}... is not the known public release of "
                f"{report.dataset} {split} (an edited or re-encoded copy?)"
            )
    elif known.dataset != report.dataset or known.split != split:
        report.problems.append(
            f"{path}: this file is {known.name} {known.split} ({known.file}), not {report.dataset} {split}"
        )


def _image_dirs(folder: Path, layout: Layout, split: str, override: list[Path] | None) -> list[Path] | None:
    if override:
        return list(override)
    dirs = []
    for candidates in layout.images:
        found = next((folder / name for name in candidates if (folder / name).is_dir()), None)
        if found is None:
            return None
        dirs.append(found / _MNRE_IMAGE_SPLITS[split] if layout.per_split_images else found)
    return dirs


def check_dataset(
    folder: str | Path,
    dataset: str,
    *,
    images: list[Path] | None = None,
    text_only: bool = False,
    max_listed: int = 50,
) -> dict:
    """Check the copy of ``dataset`` in ``folder``; see the module docstring. Returns a JSON-able dict."""
    from mmie.data import read_dataset
    from mmie.data.images import check_images

    if dataset not in LAYOUTS:
        raise MmieError(f"--dataset {dataset!r}: unknown dataset (known: {', '.join(DATASETS)})")
    layout = LAYOUTS[dataset]
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError("no such dataset folder", path=folder)
    found = {split: _find(folder, names) for split, names in layout.files.items()}
    if not any(found.values()):
        wanted = "; ".join(f"{split}: {' or '.join(repr(n) for n in names)}" for split, names in layout.files.items())
        present = ", ".join(sorted(p.name for p in folder.iterdir())[:12]) or "nothing"
        raise DataError(
            f"none of the {dataset} files are here (expected {wanted}; the folder holds {present})", path=folder
        )
    report = _Report(dataset, folder)
    for split, path in found.items():
        if path is None:
            report.problems.append(f"{folder}: {split} split missing (expected {' or '.join(layout.files[split])})")
            report.splits[split] = {"file": None}
            continue
        entry = fingerprint(path)
        info: dict = {"file": str(path), "sha256": entry["sha256"], "release": entry["release"]}
        report.splits[split] = info
        _check_release(report, split, entry, path)
        try:
            records = read_dataset(path, format=layout.format).records
        except MmieError as error:
            report.problems.append(f"does not read as {layout.format}: {error}")
            continue
        expected = layout.counts[split]
        info.update({layout.unit: len(records), "expected": expected, "counts_match": len(records) == expected})
        if len(records) != expected:
            report.problems.append(
                f"{path}: {len(records):,} {layout.unit}, the papers report {expected:,} ({layout.source})"
            )
        if not text_only:
            _check_split_images(report, layout, split, records, images, max_listed, check_images)
    for extra in layout.extras:
        if not (folder / extra).exists():
            report.warnings.append(f"{folder / extra}: missing (the release ships it; region models read it)")
    return report.to_dict()


def _check_split_images(report, layout, split, records, override, max_listed, check_images) -> None:
    dirs = _image_dirs(report.folder, layout, split, override)
    if dirs is None or not all(d.is_dir() for d in dirs):
        wanted = " and ".join(" or ".join(f"{c}/" for c in candidates) for candidates in layout.images)
        if layout.per_split_images:
            wanted += f" (with {_MNRE_IMAGE_SPLITS[split]}/ inside)"
        message = (
            f"{report.folder}: no image folder {wanted} (pass --images DIR, or --text-only for the text files alone)"
        )
        if message not in report.problems:
            report.problems.append(message)
        return
    posts = records if layout.unit == "posts" else list({id(r.post): r.post for r in records}.values())
    result = check_images(posts, dirs)
    problems = [
        {"image": problem.ref, "record": problem.record_id, "reason": problem.reason, "path": problem.path}
        for problem in result.problems
    ]
    report.images[split] = {
        "folders": [str(d) for d in dirs],
        "loaded": result.loaded,
        "affected": len(problems),
        "by_reason": result.counts(),
        "listed": problems[:max_listed],
    }
    if problems:
        report.problems.append(
            f"{split}: {len(problems)} of {result.loaded + len(problems)} images unusable "
            f"({', '.join(f'{n} {r}' for r, n in sorted(result.counts().items()))})"
        )


def render_check(report: dict) -> str:
    """The report for people: one line per split, then the images, the problems and the warnings."""
    lines = [f"{report['dataset']} in {report['folder']}: " + ("OK" if report["ok"] else "PROBLEMS FOUND")]
    for split, info in report["splits"].items():
        if not info.get("file"):
            lines.append(f"  {split:<5} missing")
            continue
        count = next(
            (f"{info[k]:,} {k} (papers: {info['expected']:,})" for k in ("posts", "instances") if k in info), ""
        )
        release = info["release"] or f"unknown release, sha256 {info['sha256'][:16]}..."
        lines.append(f"  {split:<5} {info['file']}  {count}  {release}")
    for split, info in report["images"].items():
        lines.append(f"  images {split}: {info['loaded']:,} decoded, {info['affected']:,} unusable")
        for problem in info["listed"]:
            lines.append(f"    {problem['reason']:<11} {problem['path']} (record {problem['record']})")
    lines += [f"problem: {text}" for text in report["problems"]]
    lines += [f"warning: {text}" for text in report["warnings"]]
    return "\n".join(lines)
