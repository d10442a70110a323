"""Issue #24: model folders are data, and damaged inputs get one-line errors (exit 2), never a traceback.

A saved model folder runs none of its own code (a tokenizer's ``auto_map`` is refused without asking),
downloads nothing it names (its vision encoder is read from local files only), and never chooses
where mmie writes (its ``feature_cache``); a vision encoder refused for a pickle with code in it or for
custom code, a damaged ``identity.json`` in the feature cache, and a model evaluated on the other
task's file are one-line errors or warnings.
"""

from __future__ import annotations

import builtins
import json
import shutil
import socket
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from extraction_models import synthetic_images
from mmie.encoders.hub import hub_options, local_files_only
from test_glra import make_tiny_vit
from test_score_cli import run


def copy_folder(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data), encoding="utf-8")


@pytest.fixture
def no_prompt(monkeypatch):
    """transformers asks "Do you wish to run the custom code? [y/N]" when trust_remote_code is not given."""

    def refuse(*_args, **_kwargs):
        raise AssertionError("mmie let transformers ask whether to run a folder's code")

    monkeypatch.setattr(builtins, "input", refuse)


def test_a_tokenizer_with_auto_map_is_refused_without_asking_and_its_code_never_runs(
    extraction_models, tmp_path, capsys, no_prompt
):
    folder = copy_folder(extraction_models.ner, tmp_path / "model")
    marker = tmp_path / "the-code-ran"
    (folder / "evil.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
        "from transformers import BertTokenizerFast as EvilTokenizer\n"
    )

    def add_auto_map(config: dict) -> None:
        config["tokenizer_class"] = "EvilTokenizer"
        config["auto_map"] = {"AutoTokenizer": ["evil.EvilTokenizer", "evil.EvilTokenizer"]}

    edit_json(folder / "tokenizer_config.json", add_auto_map)
    data = tmp_path / "posts.txt"
    shutil.copy(Path(extraction_models.ner).parents[1] / "ner_data" / "test.txt", data)
    code, _, err = run(["evaluate", str(folder), str(data)], capsys)
    assert code == 2 and not marker.exists()
    [line] = [line for line in err.splitlines() if line.startswith("error:")]
    assert line.startswith(f"error: {folder}: the model folder's tokenizer: ") and "never runs" in line


def test_a_saved_folder_naming_a_hub_id_downloads_nothing(extraction_models, tmp_path, capsys, monkeypatch):
    import huggingface_hub.constants

    folder = copy_folder(extraction_models.re, tmp_path / "model")

    def name_a_hub_id(config: dict) -> None:
        config["components"]["vision_encoder"]["name"] = "someone/vit-that-is-nowhere-here"
        config["model_config"]["vision_encoder"] = "someone/vit-that-is-nowhere-here"

    edit_json(folder / "config.json", name_a_hub_id)
    # online, with an empty Hugging Face cache: any download would try to open a connection
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    attempts: list[object] = []

    def no_network(*args, **_kwargs):
        attempts.append(args)
        raise OSError("the test allows no network")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    images = synthetic_images(extraction_models.images, 1)[0].parent
    data = images.parent / "test.txt"
    code, _, err = run(["evaluate", str(folder), str(data), "--images", str(images)], capsys)
    assert code == 2 and attempts == []
    [line] = [line for line in err.splitlines() if line.startswith("error:")]
    assert line.startswith(f"error: {folder}: vision encoder 'someone/vit-that-is-nowhere-here': not a local folder")
    # the same id in the local Hugging Face cache: read from there, still without a request
    snapshot = tmp_path / "hf-cache" / "models--someone--vit-that-is-nowhere-here" / "snapshots" / "0123abc"
    vit = json.loads((Path(extraction_models.re) / "config.json").read_text())["model_config"]["vision_encoder"]
    shutil.copytree(vit, snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0123abc")
    code, out, err = run(["evaluate", str(folder), str(data), "--images", str(images), "--json"], capsys)
    assert code == 0 and attempts == [], err
    assert json.loads(out)["n"] > 0
    assert hub_options() == {"trust_remote_code": False, "local_files_only": False}  # the user's own names may
    with local_files_only():
        assert hub_options()["local_files_only"] is True


def test_a_saved_folder_never_chooses_where_mmie_writes(extraction_models, tmp_path, capsys, monkeypatch):
    folder = copy_folder(extraction_models.re, tmp_path / "model")
    chosen_by_folder = tmp_path / "chosen-by-the-folder"
    edit_json(folder / "config.json", lambda c: c["model_config"].update(feature_cache=str(chosen_by_folder)))
    mine = tmp_path / "my-cache"
    monkeypatch.setenv("MMIE_CACHE_DIR", str(mine))
    images = synthetic_images(extraction_models.images, 1)[0].parent
    code, _, err = run(["evaluate", str(folder), str(images.parent / "test.txt"), "--images", str(images)], capsys)
    assert code == 0, err
    assert not chosen_by_folder.exists()
    assert list(mine.glob("*/??/*.safetensors"))  # the frozen features went where the user said


def refused_encoders(root: Path) -> dict[str, tuple[Path, Path]]:
    """A tiny ViT whose weights are a pickle with code in it, and one whose config needs its own code."""

    class RunsCode:
        def __init__(self, marker: Path) -> None:
            self.marker = marker

        def __reduce__(self):
            return (Path.write_text, (self.marker, "ran"))

    pickled = Path(make_tiny_vit(root / "pickled"))
    state = load_file(pickled / "model.safetensors")
    (pickled / "model.safetensors").unlink()
    torch.save({**state, "extra": RunsCode(root / "pickle-ran")}, pickled / "pytorch_model.bin")
    custom = Path(make_tiny_vit(root / "custom"))
    (custom / "evil.py").write_text(
        f"import pathlib\npathlib.Path({str(root / 'custom-ran')!r}).write_text('ran')\n"
        "from transformers import ViTConfig as EvilConfig, ViTModel as EvilModel\n"
    )

    def custom_code(config: dict) -> None:
        config["model_type"] = "evil-vit"
        config["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"}

    edit_json(custom / "config.json", custom_code)
    return {"pickle": (pickled, root / "pickle-ran"), "custom code": (custom, root / "custom-ran")}


def test_a_refused_vision_encoder_is_a_one_line_error(extraction_models, tmp_path, capsys, no_prompt):
    images = synthetic_images(extraction_models.images, 1)[0].parent
    for name, (encoder, marker) in refused_encoders(tmp_path).items():
        argv = ["cache", "build", "--images", str(images), "--encoder", str(encoder), "--cache-dir", str(tmp_path)]
        code, _, err = run(argv, capsys)
        assert code == 2 and not marker.exists(), (name, err)
        [line] = [line for line in err.splitlines() if line.startswith("error:")]
        assert line.startswith(f"error: vision encoder '{encoder}': cannot load it: "), (name, line)
        assert "Traceback" not in err


def test_a_damaged_identity_json_is_reported_and_rewritten(extraction_models, tmp_path, capsys, caplog):
    vit = make_tiny_vit(tmp_path / "vit")
    images = synthetic_images(extraction_models.images, 1)[0].parent
    cache = tmp_path / "cache"
    build = ["cache", "build", "--images", str(images), "--encoder", vit, "--cache-dir", str(cache)]
    assert run(build, capsys)[0] == 0
    [identity] = cache.glob("*/identity.json")
    good = identity.read_bytes()
    for damage in (b"\xff\xfe not UTF-8", b"{not json", b"[1, 2]"):
        identity.write_bytes(damage)
        code, out, err = run(["cache", "info", str(cache)], capsys)
        assert code == 0 and "identity.json damaged (rewritten at the next use)" in out, (damage, out, err)
        code, out, err = run(["cache", "info", str(cache), "--json"], capsys)
        assert code == 0 and json.loads(out)[0]["damaged"] is True
        caplog.clear()
        code, out, err = run(build, capsys)  # the next use rewrites it, with a warning, and finds every entry
        assert code == 0, err
        assert identity.read_bytes() == good and "identity.json was damaged; rewritten" in caplog.text
        assert "0 computed" in out


def test_evaluate_on_the_other_tasks_file_is_a_one_line_error(extraction_models, tmp_path, capsys):
    ner_file = Path(extraction_models.ner).parents[1] / "ner_data" / "test.txt"
    re_file = synthetic_images(extraction_models.images, 1)[0].parents[1] / "test.txt"
    for model, data, message in (
        (extraction_models.ner, re_file, "holds RE records (mremi), but the model is an NER model"),
        (extraction_models.re, ner_file, "holds NER records (mnermi), but the model is an RE model"),
    ):
        commands = (
            ["evaluate"],
            ["evaluate", "--challenge", "align-noise"],
            ["predict", "--out", str(tmp_path / "p.jsonl")],
        )
        for command in commands:
            code, _, err = run([*command[:1], str(model), str(data), *command[1:]], capsys)
            assert code == 2 and err.splitlines()[-1] == f"error: {data}: {message}", (command, err)


DAMAGES = {
    "no labels": ("config.json", lambda c: c.pop("labels"), "config.json: labels: missing, or not a JSON list"),
    "model_config a list": ("config.json", lambda c: c.update(model_config=[1]), "model_config: missing, or not"),
    "an unknown model": ("config.json", lambda c: c.update(model="nope"), "model.name: unknown model 'nope'"),
    "a bad setting": ("config.json", lambda c: c["model_config"].update(max_length="x"), "model.max_length: "),
    "weights cut short": ("model.safetensors", 1000, "model.safetensors: cannot load the weights: "),
    "a garbled tokenizer": ("tokenizer.json", b"\xff\xfe", "the model folder's tokenizer: cannot load"),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_model_folder_is_a_one_line_error(extraction_models, tmp_path, capsys, damage):
    folder = copy_folder(extraction_models.ner, tmp_path / "model")
    name, change, words = DAMAGES[damage]
    if callable(change):
        edit_json(folder / name, change)
    elif isinstance(change, int):
        (folder / name).write_bytes((folder / name).read_bytes()[:change])
    else:
        (folder / name).write_bytes(change)
    data = Path(extraction_models.ner).parents[1] / "ner_data" / "test.txt"
    code, _, err = run(["evaluate", str(folder), str(data)], capsys)
    assert code == 2 and "Traceback" not in err, err
    line = err.splitlines()[-1]
    assert line.startswith(f"error: {folder}") and words in line, line
