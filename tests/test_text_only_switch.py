"""The text-only switch (``model.use_images: false``) of UMT, MAF, HVPNeT, HVPNeT-RE, MKGformer, FocalMRE
and GLRA, on a tiny real BERT: no vision part is built, what is left is each model's text reading (HVPNeT
and MAF are BERT-CRF, HVPNeT-RE and MKGformer MTB, UMT keeps its span task, GLRA eq. 7's text part,
FocalMRE eq. 6-7 over the text vectors), images never change a prediction, a dataset whose image files
do not exist trains through the engine, and a model without such a switch refuses it by name.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from conftest import make_ner_posts, make_re_instances, write_splits
from mmie.data.schema import Post
from mmie.errors import ConfigError
from mmie.inference.loading import load_model
from mmie.models import create_model, create_processor, create_vocabulary, model_config
from mmie.models.base import gather_positions
from mmie.training import train
from mmie.training.config import load_config
from mmie.training.engine import label_set
from test_tpm_mi import tiny_vit  # noqa: F401 - the fixture

NER = ["umt", "maf", "hvpnet"]
RE = ["hvpnet_re", "mkgformer", "focalmre", "glra"]
# The parts (top-level modules) each text-only model may hold: no vision encoder, no image layer.
TEXT_PARTS = {
    "umt": {"text_encoder", "classifier", "crf", "span_attention", "span_classifier", "span_crf"},
    "maf": {"text_encoder", "classifier", "crf"},
    "hvpnet": {"text_encoder", "classifier", "crf"},
    **{name: {"text_encoder", "classifier"} for name in RE},
}
# Without the images these ARE the text baseline: the baseline's weights load and give its logits.
SAME_AS = {"maf": "bert_crf", "hvpnet": "bert_crf", "hvpnet_re": "mtb", "mkgformer": "mtb"}
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def task_of(name: str) -> str:
    return "ner" if name in NER + ["bert_crf"] else "re"


def records_of(task: str, count: int = 6, seed: int = 0) -> list:
    return make_ner_posts(count, seed) if task == "ner" else make_re_instances(count, seed)


def post_of(record) -> Post:
    return record if isinstance(record, Post) else record.post


def build(name: str, encoder: str, images: Path | None = None, records: list | None = None, **settings):
    """Model, processor and a batch of ``records`` (default: 6 posts naming images), as the engine builds them."""
    records = records if records is not None else records_of(task_of(name))
    labels = label_set(task_of(name), records_of(task_of(name)))
    switch = {} if name in SAME_AS.values() else {"use_images": False}
    config = {"name": name, "encoder": encoder, "max_length": 32, "dropout": 0.0, **switch, **settings}
    tokenizer = create_vocabulary(config)
    processor = create_processor(config, tokenizer, labels, images=images)
    torch.manual_seed(0)
    model = create_model(processor.config, labels, tokenizer=tokenizer).eval()
    return model, processor, processor(records)


@pytest.mark.parametrize("name", NER + RE)
def test_the_switch_builds_no_vision_encoder_and_no_image_layer(name, tiny_bert, tiny_vit):  # noqa: F811
    model, processor, batch = build(name, tiny_bert)
    assert not processor.reads_images and processor.image_slots == 0
    assert not hasattr(model, "vision_encoder") and "vision_encoder" not in model.component_configs()
    parts = {parameter.split(".")[0] for parameter, _ in model.named_parameters()}
    assert parts <= TEXT_PARTS[name], parts - TEXT_PARTS[name]
    assert not [key for key in batch if "image" in key or "region" in key or "crop" in key or "focal" in key]
    labels = label_set(task_of(name), records_of(task_of(name)))
    with_images = create_model({"name": name, "encoder": tiny_bert, "vision_encoder": tiny_vit}, labels)
    extra = {parameter.split(".")[0] for parameter, _ in with_images.named_parameters()} - parts
    assert "vision_encoder" in extra and len(extra) > 1  # the image layers are gone too, not only the encoder


@pytest.mark.parametrize("name", sorted(SAME_AS))
def test_without_images_hvpnet_and_maf_are_bert_crf_and_hvpnet_re_and_mkgformer_are_mtb(name, tiny_bert):
    model, _, batch = build(name, tiny_bert)
    baseline, _, baseline_batch = build(SAME_AS[name], tiny_bert)
    assert set(batch) == set(baseline_batch)
    model.load_state_dict(baseline.state_dict())  # strict: exactly the baseline's parameters
    with torch.no_grad():
        assert torch.allclose(model(**batch).logits, baseline(**baseline_batch).logits, atol=1e-6)
        if name in ("hvpnet", "hvpnet_re"):
            assert model(**batch).gates is None


def test_umt_without_images_keeps_its_span_task_and_mixes_it_in(tiny_bert):
    model, _, batch = build("umt", tiny_bert, span_mix=0.5, span_weight=0.5)
    labels = batch.pop("labels")
    with torch.no_grad():
        text = model.encode_text(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        span = model.span_emissions(text, batch["attention_mask"].bool(), batch["word_starts"])  # z_s, U3
        main = model.classifier(gather_positions(text, batch["word_starts"]))  # z_m = W_m T, U9'
        expected = 0.5 * main + 0.5 * span @ model.conversion  # z, U9
        assert torch.allclose(model(**batch).logits, expected, atol=1e-6)
        # U10: the auxiliary span loss is part of the loss (beta 0 gives the main CRF's alone)
        model.model_config.span_weight = 0.0
        main_only = model(**batch, labels=labels).loss
        model.model_config.span_weight = 0.5
        span_loss = model.span_crf(span, model.span_labels(labels), batch["word_mask"])
        assert torch.allclose(model(**batch, labels=labels).loss, main_only + 0.5 * span_loss, atol=1e-5)
    assert span_loss > 0


@pytest.mark.parametrize(("use_global", "use_local", "width"), [(True, True, 3), (False, True, 2), (True, False, 1)])
def test_glra_without_images_classifies_eq7s_text_part(tiny_bert, use_global, use_local, width):
    model, _, batch = build("glra", tiny_bert, use_global=use_global, use_local=use_local)
    d = model.hidden_size
    assert model.classifier.in_features == width * d  # [H_[CLS]; H_<s>; H_<o>] without C and U
    with torch.no_grad():
        hidden = model.encode_text(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        markers = model.marker_vectors(hidden, batch["head_start"], batch["tail_start"])
        parts = ([hidden[:, 0]] if use_global else []) + ([markers.flatten(1)] if use_local else [])
        assert torch.allclose(model(**batch).logits, model.classifier(torch.cat(parts, dim=1)), atol=1e-6)


@pytest.mark.parametrize(("od_regions", "sets"), [("grid", 2), ("none", 1)])
def test_focalmre_without_images_reads_the_text_vectors_in_every_set(tiny_bert, od_regions, sets):
    model, _, batch = build("focalmre", tiny_bert, od_regions=od_regions)
    with torch.no_grad():
        hidden = model.encode_text(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        markers = model.marker_vectors(hidden, batch["head_start"], batch["tail_start"]).flatten(1)
        z = torch.cat([markers] * sets, dim=1)  # eq. 6: [h_<s>; h_<o>] for the VG set (and the OD set)
        assert torch.allclose(model(**batch).logits, model.classifier(z), atol=1e-6)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    """Real pictures for every image the test records name."""
    folder = tmp_path_factory.mktemp("images")
    for task in ("ner", "re"):
        for number, record in enumerate(records_of(task)):
            for slot, ref in enumerate(post_of(record).images):
                Image.new("RGB", (40 + 8 * slot, 32), (60 * slot, 200 - 30 * number, 90)).save(folder / ref)
    return folder


@pytest.mark.parametrize("name", NER + RE)
def test_predictions_are_the_same_with_the_images_or_without_them(name, tiny_bert, image_folder):
    model, _, with_images = build(name, tiny_bert, images=image_folder)
    stripped = records_of(task_of(name))
    for record in stripped:
        post_of(record).images = []
    _, _, without_images = build(name, tiny_bert, records=stripped)
    with torch.no_grad():
        first, second = model(**with_images), model(**without_images)
    assert torch.equal(first.logits, second.logits)
    if task_of(name) == "ner":
        assert torch.equal(first.predictions, second.predictions)


@pytest.mark.slow
@pytest.mark.parametrize("name", NER + RE)
def test_a_dataset_without_its_image_files_trains_end_to_end(name, tiny_bert, tmp_path):
    task = task_of(name)
    paths = write_splits(tmp_path / "data", task, {"train": 16, "dev": 8})  # posts name images; no file exists
    config = {
        "task": task,
        "model": {"name": name, "encoder": tiny_bert, "max_length": 32, "use_images": False},
        "data": {split: str(path) for split, path in paths.items()},
        "training": {"epochs": 1, "batch_size": 8, "learning_rate": 1e-3, "warmup_ratio": 0.0},
    }
    result = train(config, output_dir=tmp_path / "run")
    assert 0.0 <= result.metrics["dev"]["f1"] <= 1.0
    assert result.summary["train_examples"] == 16
    loaded = load_model(result.model_dir, device="cpu")
    assert loaded.model.model_config.use_images is False and not hasattr(loaded.model, "vision_encoder")
    predictions = loaded.predict(records_of(task, count=4, seed=7), batch_size=4)
    assert len(predictions) == 4


@pytest.mark.parametrize("name", ["tpm_mi", "hvformer", "mtb_first_image", "bert_crf_first_image"])
def test_a_model_without_a_text_only_switch_refuses_it_by_name(name):
    with pytest.raises(ConfigError, match=rf"model\.use_images: .*{name} has no text-only switch"):
        model_config({"name": name, "use_images": False})
    assert model_config({"name": name, "use_images": True}).use_images  # type: ignore[attr-defined]


def test_a_text_model_has_no_such_key():
    with pytest.raises(ConfigError, match=r"model\.use_images: unknown key"):
        model_config({"name": "bert_crf", "use_images": False})


TEXT_CONFIGS = sorted(CONFIGS.glob("*/*_text.yaml")) + sorted(CONFIGS.glob("*/offline/*_text.yaml"))


def test_there_is_a_text_only_config_per_switch():
    names = {load_config(path).model.name for path in CONFIGS.glob("*/*_text.yaml")}
    assert names == set(NER + RE)
    assert len(TEXT_CONFIGS) == 2 * len(names)  # each with its offline overlay


@pytest.mark.parametrize("path", TEXT_CONFIGS, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_the_text_only_configs_validate_with_the_switch_off(path):
    config = load_config(path)
    assert config.model.use_images is False  # type: ignore[attr-defined]
    assert config.model.name in NER + RE
