"""Tiny trained models for the extraction tests (API, CLI, service, page), built once per session.

NER: BERT-CRF (text only) trained through the real engine on the learnable tiny NER posts of
conftest (``alice visited paris today``): it finds PER/LOC/ORG names after a few seconds.
RE: GLRA with a tiny BERT and a tiny ViT trained one epoch on a SYNTHETIC MRE-MI sample (written by
``mmie data synth``); it was trained on precomputed crops, so uploads get the offline grid regions.
Its labels are typed (``/per/loc/...``), so candidate pairs are filtered by entity type.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import TEST_WORDS, make_tiny_bert, write_splits

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "synthetic"


@dataclass(frozen=True)
class ExtractionModels:
    ner: Path
    re: Path
    images: Path  # the synthetic sample's image folder (real files to upload)


def _train_ner(root: Path) -> Path:
    from mmie.training import train

    paths = write_splits(root / "ner_data", "ner", {"train": 48, "dev": 16, "test": 16})
    bert = make_tiny_bert(root / "ner_bert")
    config = {
        "task": "ner",
        "model": {"name": "bert_crf", "encoder": bert, "max_length": 32},
        "data": {split: str(path) for split, path in paths.items()},
        "training": {
            "epochs": 8,
            "batch_size": 8,
            "learning_rate": 3e-3,
            "head_learning_rate": 1e-2,
            "warmup_ratio": 0.0,
            "logging_steps": 50,
        },
    }
    return train(config, output_dir=root / "ner_run").model_dir


def _train_glra(root: Path) -> tuple[Path, Path]:
    from mmie.data import read_dataset
    from mmie.data.synth import generate_dataset
    from mmie.training import train
    from test_glra import make_tiny_vit

    sample = root / "synth_mre"
    generate_dataset("mre", sample, 40, 5, overwrite=True)
    words = {
        token.lower()
        for split in ("train", "val", "test")
        for record in read_dataset(sample / f"{split}.txt").records
        for token in record.post.tokens
    }
    bert = make_tiny_bert(root / "re_bert", sorted(words | set(TEST_WORDS)))
    vit = make_tiny_vit(root / "vit")
    overrides = [
        f"model.encoder={bert}",
        f"model.vision_encoder={vit}",
        f"model.feature_cache={root / 'cache'}",
        "model.max_length=48",
        f"data.train={sample / 'train.txt'}",
        f"data.dev={sample / 'val.txt'}",
        f"data.test={sample / 'test.txt'}",
        f"data.images={sample / 'images'}",
        "training.epochs=1",
        "training.learning_rate=1e-3",
        "training.head_learning_rate=3e-3",
        "training.logging_steps=50",
    ]
    result = train(CONFIGS / "glra.yaml", output_dir=root / "re_run", overrides=overrides)
    return result.model_dir, sample / "images"


@pytest.fixture(scope="session")
def extraction_models(tmp_path_factory: pytest.TempPathFactory) -> ExtractionModels:
    root = tmp_path_factory.mktemp("extraction-models")
    ner = _train_ner(root)
    re_model, images = _train_glra(root)
    return ExtractionModels(ner, re_model, images)


@contextmanager
def running_server(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free port of 127.0.0.1 in a thread; yields the base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", limit_concurrency=64))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def synthetic_images(images: Path, count: int) -> list[Path]:
    """The first ``count`` image files of the synthetic sample (real JPEGs the generator drew)."""
    return sorted(images.glob("*.jpg"))[:count]


PEOPLE = ["alice", "bob", "carol", "dave", "erin", "frank"]
PLACES = ["paris", "rome", "tokyo"]


def crowded_post(count: int, chars: int | None = None) -> tuple[str, list[dict]]:
    """A post naming ``count`` entities, PER and LOC in turn (``count / 2`` squared PER -> LOC candidate
    pairs and as many PER -> PER), padded with words to ``chars`` characters: work for the pair limits."""
    text, entities = "", []
    for k in range(count):
        word = PEOPLE[k % 6] if k % 2 == 0 else PLACES[k % 3]
        entities.append({"start": len(text), "end": len(text) + len(word), "type": "PER" if k % 2 == 0 else "LOC"})
        text += word + " visited "
    while chars is not None and len(text) < chars:
        text += "today with the news "
    return (text[:chars] if chars else text), entities
