"""Shared test fixtures: a tiny real BERT encoder (saved and loaded through from_pretrained) and
small learnable NER / RE datasets written through the real writers.

    def test_something(tiny_bert):          # path of a folder: config.json, model.safetensors,
        model = AutoModel.from_pretrained(tiny_bert)      # vocab.txt, tokenizer.json (fast)

``make_tiny_bert(path, words)`` builds one with another vocabulary; ``make_tiny_roberta`` and
``make_tiny_mpnet`` build the non-BERT encoders (other special tokens, no token_type_ids);
``make_tiny_clip`` a two-tower CLIP with CLIP's tokenizer and image processor (``tiny_clip``).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path

import pytest

from mmie.data.schema import Post, RelationInstance, Span

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# The tiny datasets' vocabulary: names by entity type, and the words around them.
PEOPLE = ["alice", "bob", "carol", "dave", "erin", "frank"]
PLACES = [["paris"], ["rome"], ["tokyo"], ["new", "york"], ["hong", "kong"]]
ORGANISATIONS = [["nasa"], ["fifa"], ["unesco"], ["red", "cross"]]
FILLERS = ["visited", "met", "in", "at", "with", "today", "the", "news", "said", "from", "and", "a", "!", ":"]
RELATION_WORDS = ["lives", "works", "for", "likes", "sees"]
TEST_WORDS = sorted(
    set(PEOPLE + [w for name in PLACES + ORGANISATIONS for w in name] + FILLERS + RELATION_WORDS)
    | {"bill", "cosby", "sap", "se", "hollywood", "walk", "of", "fame", "star", "on", "rt", "'", "s", "##s"}
)


def make_tiny_bert(path: str | Path, words: Iterable[str] = TEST_WORDS, seed: int = 0) -> str:
    """Save a 2-layer, hidden-32 BERT with a WordPiece vocabulary of ``words`` to ``path``."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocabulary = SPECIAL_TOKENS + [w for w in dict.fromkeys(words) if w not in SPECIAL_TOKENS]
    (path / "vocab.txt").write_text("\n".join(vocabulary) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab={word: i for i, word in enumerate(vocabulary)}, do_lower_case=True)
    assert len(tokenizer) == len(vocabulary), "the tokenizer did not take the vocabulary"
    tokenizer.save_pretrained(str(path))
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocabulary),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(str(path))
    return str(path)


def make_tiny_roberta(path: str | Path, words: Iterable[str] = TEST_WORDS) -> str:
    """Save a 2-layer RoBERTa with a byte-level BPE tokenizer learnt on ``words`` (its <s>, </s>
    are special tokens: the case where the entity markers must avoid them)."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    bpe.train_from_iterator([" ".join(words)] * 3, vocab_size=400, special_tokens=specials)
    bpe.save_model(str(path))
    tokenizer = RobertaTokenizerFast(vocab=str(path / "vocab.json"), merges=str(path / "merges.txt"))
    return _save_tiny_encoder(path, tokenizer, RobertaConfig, RobertaModel)


def _save_tiny_encoder(path: Path, tokenizer, config_class, model_class) -> str:
    """Save ``tokenizer`` and a 2-layer, hidden-32 ``model_class`` over its vocabulary to ``path``."""
    import torch

    tokenizer.save_pretrained(str(path))
    torch.manual_seed(0)
    config = config_class(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=130,
        pad_token_id=tokenizer.pad_token_id,
    )
    model_class(config).save_pretrained(str(path))
    return str(path)


def make_tiny_mpnet(path: str | Path, words: Iterable[str] = TEST_WORDS) -> str:
    """Save a 2-layer MPNet with a WordPiece vocabulary of ``words`` and MPNet's special tokens (``<s>``
    and ``</s>`` start and end the text: the markers must avoid them; no token_type_ids)."""
    from transformers import MPNetConfig, MPNetModel, MPNetTokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    specials = ["<s>", "<pad>", "</s>", "[UNK]", "<mask>"]  # all-mpnet-base-v2's, in its order
    vocabulary = specials + [w for w in dict.fromkeys(words) if w not in specials]
    tokenizer = MPNetTokenizerFast(
        vocab={w: i for i, w in enumerate(vocabulary)}, do_lower_case=True, unk_token="[UNK]"
    )
    assert len(tokenizer) == len(vocabulary), "the tokenizer did not take the vocabulary"
    return _save_tiny_encoder(path, tokenizer, MPNetConfig, MPNetModel)


def make_tiny_clip(path: str | Path, words: Iterable[str] = TEST_WORDS) -> str:
    """Save a 2-layer, hidden-32 CLIPModel (text and vision towers, 32 x 32 pictures in 16-pixel patches,
    projection 16) with a CLIP tokenizer (byte-pair merges learnt on ``words``, ``</w>`` word ends) and
    CLIP's image processor to ``path``: what a CLIP checkpoint folder holds."""
    import json

    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    specials = ["<|startoftext|>", "<|endoftext|>"]
    bpe = Tokenizer(models.BPE(end_of_word_suffix="</w>"))
    bpe.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=specials, end_of_word_suffix="</w>")
    bpe.train_from_iterator([" ".join(words)] * 3, trainer)
    bpe.model.save(str(path))
    vocab = json.loads((path / "vocab.json").read_text(encoding="utf-8"))
    merges_text = (path / "merges.txt").read_text(encoding="utf-8").splitlines()
    merges = [tuple(line.split()) for line in merges_text if line and not line.startswith("#")]
    tokenizer = CLIPTokenizerFast(vocab=vocab, merges=merges)
    tokenizer.save_pretrained(str(path))
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(str(path))
    torch.manual_seed(0)
    tower = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
    text = {**tower, "vocab_size": len(tokenizer), "max_position_embeddings": 77}
    text |= {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    config = CLIPConfig(
        text_config=text, vision_config={**tower, "image_size": 32, "patch_size": 16}, projection_dim=16
    )
    CLIPModel(config).save_pretrained(str(path))
    return str(path)


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> None:
    """Tiny models run much faster on one thread than on two contended ones (CI's 2 busy cores)."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def _feature_cache_in_a_temporary_folder(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Saved model folders never choose the feature cache (``$MMIE_CACHE_DIR`` does): keep the tests'
    features out of the user's ~/.cache unless the run names a folder."""
    import os

    if not os.environ.get("MMIE_CACHE_DIR"):
        os.environ["MMIE_CACHE_DIR"] = str(tmp_path_factory.mktemp("mmie-cache"))


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Folder of a tiny BERT + fast tokenizer over :data:`TEST_WORDS` (load it with from_pretrained)."""
    return make_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


# --------------------------------------------------------------------------- tiny datasets


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


def _images(rng: random.Random, identifier: str) -> list[str]:
    return [f"{identifier}_{i}.jpg" for i in range(rng.randint(1, 4))]


def make_ner_posts(count: int, seed: int = 0) -> list[Post]:
    """Posts like ``alice visited new york today`` with BIO tags over PER, LOC, ORG."""
    rng = random.Random(seed)
    posts = []
    for index in range(count):
        tokens: list[str] = []
        tags: list[str] = []

        def add(words: list[str], kind: str | None, tokens: list[str] = tokens, tags: list[str] = tags) -> None:
            tokens.extend(words)
            tags.extend(["O"] * len(words) if kind is None else [f"B-{kind}"] + [f"I-{kind}"] * (len(words) - 1))

        if rng.random() < 0.5:
            add([rng.choice(["rt", "news", "!"]), ":"], None)
        add([rng.choice(PEOPLE)], "PER")
        add([rng.choice(["visited", "met", "said"])], None)
        kind, names = rng.choice([("LOC", PLACES), ("ORG", ORGANISATIONS)])
        add(list(rng.choice(names)), kind)
        add([rng.choice(["today", "with", "and"])], None)
        if rng.random() < 0.5:
            add([rng.choice(PEOPLE)], "PER")
        identifier = f"p{seed}_{index}"
        posts.append(Post(id=identifier, tokens=tokens, images=_images(rng, identifier), tags=tags))
    return posts


RELATIONS = {"lives": "/per/loc/place_of_residence", "works": "/per/org/member_of", "likes": "None"}


def make_re_instances(count: int, seed: int = 0) -> list[RelationInstance]:
    """``alice lives in paris`` -> place_of_residence; ``bob works for nasa`` -> member_of; ``likes`` -> None."""
    rng = random.Random(seed)
    instances = []
    for index in range(count):
        verb = rng.choice(list(RELATIONS))
        person = rng.choice(PEOPLE)
        other = list(rng.choice(PLACES if verb == "lives" else ORGANISATIONS if verb == "works" else PLACES))
        middle = {"lives": ["lives", "in"], "works": ["works", "for"], "likes": ["likes"]}[verb]
        prefix = ["rt", ":"] if rng.random() < 0.5 else []
        tokens = prefix + [person] + middle + other + [rng.choice(["today", "!"])]
        head = Span(len(prefix), len(prefix) + 1, person)
        start = len(prefix) + 1 + len(middle)
        tail = Span(start, start + len(other), " ".join(other))
        identifier = f"r{seed}_{index}"
        post = Post(id=identifier, tokens=tokens, images=_images(rng, identifier))
        instances.append(RelationInstance(post=post, head=head, tail=tail, label=RELATIONS[verb]))
    return instances


def write_splits(folder: Path, task: str, sizes: dict[str, int]) -> dict[str, Path]:
    """Write train/dev/test files of a tiny dataset (mnermi / mremi) through the real writer."""
    from mmie.data import write_dataset

    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for offset, (split, size) in enumerate(sizes.items()):
        records = make_ner_posts(size, seed=offset) if task == "ner" else make_re_instances(size, seed=offset)
        paths[split] = folder / f"{split}.txt"
        write_dataset(records, paths[split], "mnermi" if task == "ner" else "mremi")
    return paths


# The extraction tests' tiny trained models (tests/extraction_models.py), shared by their files.
from extraction_models import extraction_models  # noqa: E402,F401
