"""Model folders written by an earlier mmie still load and predict what they predicted then.

Each fixture in ``tests/fixtures/model_folders/<family>/<model>/`` (see its README.md) is a model folder
written by ``save_model_folder`` at a fixed commit, with the records it was run on and what
``mmie.load_model(...).predict`` returned (``expected.json``). Loading validates the folder's
config.json against today's model config classes (unknown or renamed keys are errors), rebuilds the
model through the registry and loads the weights strictly; the predictions must then be the same:
labels and tags exactly, probabilities within 1e-5. NER word scores are only exposed publicly through
``mmie.Extractor`` (each entity's score is the mean of its words' ``tag_scores``), so they are checked
there. Only the public API is used (``mmie.load_model``, ``mmie.Extractor``, ``mmie.data``): the model
modules behind it may move.

Paths. The fixtures were built in a scratch folder that was the working directory, on encoders named
by RELATIVE paths, so the saved config.json names its vision encoder ``vision_encoder``
(``components.vision_encoder.name`` and ``model_config.vision_encoder``) and the fixture ships that
folder (a 40 kB ViT). The test copies the fixture to ``tmp_path`` and makes the copy the working
directory: the names resolve as they did when the folder was written, and config.json is used exactly
as mmie wrote it, never edited. Rebuilding "the same" tiny ViT in ``tmp_path`` instead would not be
honest, because that folder's weights matter: a FROZEN vision encoder's features are computed by the
featurizer from the encoder loaded by name (``model_config.vision_encoder``), not from the copy of its
weights inside model.safetensors. Only a fine-tuned encoder is read from model.safetensors (strict
loading overwrites the encoder rebuilt by name; :func:`test_fine_tuned_vision_weights_come_from_the_model_folder`).
``feature_cache`` is null in the configs, so the frozen features go to ``$MMIE_CACHE_DIR``, pointed at
``tmp_path``; ``region_dict`` is null, so the crop dictionary is ``images_vg.pth`` beside ``images/``
(shipped, MRE-MI layout). The tiny BERT the models were built on is NOT shipped: loading must rebuild
the text encoder from the folder's own config.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import mmie
from mmie.data import read_dataset

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "model_folders"
CASES = sorted(str(path.parent.relative_to(FIXTURES)) for path in FIXTURES.glob("*/*/expected.json"))
# The fixtures that must exist (more may be added; none may disappear).
REQUIRED = {
    "text/bert_crf",
    "text/bert_softmax",
    "text/mtb",
    "text/bert_cls",
    "tpm_mi/tpm_mi",
    "tpm_mi/bert_crf_first_image",
    "glra/glra",
    "glra/mtb_all_images",
    "focalmre/focalmre",
}
FINE_TUNED_VISION = ["tpm_mi/tpm_mi", "glra/mtb_all_images"]
TOLERANCE = 1e-5
MACHINE_PATHS = ("/work", "/tmp", "/root", "/home")


def fixture_copy(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict]:
    """The fixture copied to ``tmp_path`` (the working directory from now on) and its expected.json."""
    work = tmp_path / "fixture"
    shutil.copytree(FIXTURES / case, work)
    monkeypatch.chdir(work)  # the folders' relative encoder names resolve here, as when they were saved
    monkeypatch.setenv("MMIE_CACHE_DIR", str(tmp_path / "feature-cache"))
    return work, json.loads((work / "expected.json").read_text(encoding="utf-8"))


def load(work: Path, expected: dict):
    images = work / expected["images"] if expected["images"] else None
    return mmie.load_model(work / "model", device="cpu", images=images)


def bio_chunks(tags: list[str]) -> list[tuple[str, int, int]]:
    """Entities ``(type, start, end)`` of a REGULAR BIO sequence (every I-X continues an X)."""
    chunks: list[list] = []
    for position, tag in enumerate(tags):
        if tag.startswith("B-"):
            chunks.append([tag[2:], position, position + 1])
        elif tag.startswith("I-"):
            assert chunks and chunks[-1][0] == tag[2:] and chunks[-1][2] == position, f"irregular tags {tags}"
            chunks[-1][2] = position + 1
    return [tuple(chunk) for chunk in chunks]


def expected_outputs(expected: dict) -> list[dict]:
    """What the test compares, from expected.json: per record its label(s) and scores."""
    rows = []
    for line in expected["predictions"]:
        if expected["task"] == "ner":
            entities = [
                (kind, start, end, sum(line["tag_scores"][start:end]) / (end - start))
                for kind, start, end in bio_chunks(line["tags"])
            ]
            rows.append({"id": line["id"], "tags": line["tags"], "entities": entities})
        else:
            rows.append({key: line[key] for key in ("id", "relation", "scores", "relevance") if key in line})
    return rows


def observed_outputs(loaded, records: list, work: Path, expected: dict) -> list[dict]:
    """The same from the loaded folder: ``predict`` lines, and for NER the entity scores of ``mmie.Extractor``."""
    predictions = loaded.predict(records)
    assert [line["id"] for line in predictions] == [record.id for record in records]
    if expected["task"] == "re":
        return [
            {key: line[key] for key in ("id", "relation", "scores", "relevance") if key in line} for line in predictions
        ]
    extractor = mmie.Extractor(ner=loaded)
    rows = []
    for record, line in zip(records, predictions):
        pictures = [work / expected["images"] / ref for ref in record.images] if expected["images"] else []
        result = extractor(" ".join(record.tokens), images=pictures, id=record.id)
        assert [token["text"] for token in result["tokens"]] == record.tokens  # the same words as predict saw
        entities = [(e["type"], *e["tokens"], e["score"]) for e in result["entities"]]
        rows.append({"id": line["id"], "tags": line["tags"], "entities": entities})
    return rows


def differences(observed: list[dict], expected: list[dict], tolerance: float) -> list[str]:
    """Every way ``observed`` differs from ``expected``: labels and tags exactly, numbers within ``tolerance``."""
    found = []

    def compare(path: str, got, want) -> None:
        if isinstance(want, dict) and isinstance(got, dict):
            if set(got) != set(want):
                found.append(f"{path}: keys {sorted(got)} != {sorted(want)}")
            for key in set(got) & set(want):
                compare(f"{path}.{key}", got[key], want[key])
        elif isinstance(want, (list, tuple)) and isinstance(got, (list, tuple)):
            if len(got) != len(want):
                found.append(f"{path}: {len(got)} items != {len(want)}: {got} vs {want}")
            for index, (a, b) in enumerate(zip(got, want)):
                compare(f"{path}[{index}]", a, b)
        elif isinstance(want, float) and isinstance(got, (int, float)) and not isinstance(got, bool):
            if abs(got - want) > tolerance:
                found.append(f"{path}: {got} != {want} (+-{tolerance})")
        elif got != want:
            found.append(f"{path}: {got!r} != {want!r}")

    compare("predictions", observed, expected)
    return found


# --------------------------------------------------------------------------------------- tests


def test_every_family_has_its_fixtures():
    assert REQUIRED <= set(CASES), f"missing fixtures: {sorted(REQUIRED - set(CASES))}"


def test_fixtures_hold_no_path_of_the_machine_that_wrote_them():
    files = [path for path in FIXTURES.rglob("*") if path.is_file()]
    assert len(files) > 10 * len(REQUIRED)
    leaks = [
        f"{path.relative_to(FIXTURES)}: {marker}"
        for path in files
        for marker in MACHINE_PATHS
        if marker.encode() in path.read_bytes()
    ]
    assert not leaks


@pytest.mark.parametrize("case", CASES)
def test_saved_folder_loads_and_predicts_what_it_predicted_when_saved(case, tmp_path, monkeypatch):
    work, expected = fixture_copy(case, tmp_path, monkeypatch)
    assert not (work / "text_encoder").exists()  # the text encoder must come from the folder alone
    loaded = load(work, expected)  # validates config.json, rebuilds the model, loads the weights strictly
    assert loaded.task == expected["task"] and loaded.labels == expected["labels"]
    records = read_dataset(work / expected["records"]).records
    assert len(records) == len(expected["predictions"]) >= 4
    want = expected_outputs(expected)
    if expected["task"] == "ner":  # the word scores are checked through entities: there must be some
        assert sum(len(row["entities"]) for row in want) >= len(records)
    assert differences(observed_outputs(loaded, records, work, expected), want, TOLERANCE) == []


@pytest.mark.parametrize("case", FINE_TUNED_VISION)
def test_fine_tuned_vision_weights_come_from_the_model_folder(case, tmp_path, monkeypatch):
    """A fine-tuned vision encoder is rebuilt from the folder its config names, then its weights are
    overwritten by model.safetensors: new weights in that folder change nothing, while new vision
    weights in model.safetensors do change the outputs (so the first check is not vacuous)."""
    import torch
    from safetensors.torch import load_file, save_file

    def noisy(path: Path, prefix: str = "") -> None:
        generator = torch.Generator().manual_seed(0)
        weights = load_file(path)
        changed = {
            name: value + 0.5 * torch.randn(value.shape, generator=generator) if name.startswith(prefix) else value
            for name, value in sorted(weights.items())
        }
        assert any(not torch.equal(changed[name], weights[name]) for name in weights)
        save_file(changed, path, metadata={"format": "pt"})

    work, expected = fixture_copy(case, tmp_path, monkeypatch)
    records = read_dataset(work / expected["records"]).records
    want = expected_outputs(expected)
    noisy(work / "vision_encoder" / "model.safetensors")
    assert differences(observed_outputs(load(work, expected), records, work, expected), want, TOLERANCE) == []
    noisy(work / "model" / "model.safetensors", prefix="vision_encoder.")
    assert differences(observed_outputs(load(work, expected), records, work, expected), want, 1e-4) != []
