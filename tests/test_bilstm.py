"""The BiLSTM taggers (BiLSTM-CRF, CNN-BiLSTM-CRF, HBiLSTM-CRF) and their word-level inputs.

What defines them, tested against the modules: the vocabulary comes from the training split only,
with the papers' lookup rules (unknown words, singletons, lowercasing for lookup only); the
character encoders read every character of a word and never its padding (the CNN's max-pooling
and the BiLSTM's final states written out from Ma & Hovy's and Lample et al.'s equations); word
vectors from a text file land in the embedding rows of their words; a post is tagged the same in
any batch; and each model learns the tiny NER posts through the real engine.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import mmie
from conftest import make_ner_posts, write_splits
from mmie.data import read_dataset, write_dataset
from mmie.data.schema import Post
from mmie.errors import ConfigError, MmieError
from mmie.features.processor import word_ner_processor
from mmie.features.words import PAD_ID, UNKNOWN_ID, VOCABULARY_NAME, WordVocabulary
from mmie.models import create_model, create_processor, create_vocabulary, get_model_entry, model_config
from mmie.models.bilstm.characters import CharacterBiLstm, CharacterCnn
from mmie.training import train
from mmie.training.config import load_config
from mmie.training.engine import label_set

MODELS = ["bilstm_crf", "cnn_bilstm_crf", "hbilstm_crf"]


def post(identifier: str, words: str, tags: str | None = None) -> Post:
    tokens = words.split()
    return Post(id=identifier, tokens=tokens, images=[], tags=tags.split() if tags else ["O"] * len(tokens))


def build(name: str, records: list[Post], **settings):
    """Vocabulary, processor and model the way the engine builds them."""
    labels = label_set("ner", records)
    config = {"name": name, **settings}
    vocabulary = create_vocabulary(config, records)
    processor = create_processor(config, vocabulary, labels)
    torch.manual_seed(0)
    return create_model(processor.config, labels, tokenizer=vocabulary), processor


# ------------------------------------------------------------------------------ vocabulary


def test_vocabulary_orders_by_frequency_with_padding_unknown_first_and_singletons_last():
    vocabulary = WordVocabulary.build([post("a", "the cat saw the dog"), post("b", "the dog ran")])
    assert vocabulary.words == ["<pad>", "<unk>", "the", "dog", "cat", "ran", "saw"]
    assert vocabulary.singletons_from == 4  # cat, ran, saw: seen once
    assert vocabulary.sizes == {"vocabulary_size": 7, "alphabet_size": len(vocabulary.chars), "singletons_from": 4}
    assert vocabulary.word_id("dog") == 3 and vocabulary.word_id("zebra") == UNKNOWN_ID
    assert vocabulary.word_id("<pad>") == UNKNOWN_ID  # a post that writes a special reads it as unknown
    assert vocabulary.char_ids("tea") == [vocabulary.chars.index(c) for c in "tea"]
    assert vocabulary.char_ids("t€a") == [vocabulary.chars.index("t"), UNKNOWN_ID, vocabulary.chars.index("a")]
    assert vocabulary.char_ids("") == [UNKNOWN_ID]  # every word has a character representation
    assert vocabulary.char_ids("theater", limit=3) == vocabulary.char_ids("the")


def test_lowercasing_and_zeroed_digits_apply_to_word_lookup_only():
    posts = [post("a", "Paris 2024 paris"), post("b", "PARIS 1999")]
    cased = WordVocabulary.build(posts)
    assert cased.word_id("Paris") != cased.word_id("paris") and cased.word_id("2024") != cased.word_id("1999")
    folded = WordVocabulary.build(posts, lowercase=True, zero_digits=True)
    assert folded.words[2:] == ["paris", "0000"]  # three Paris, then two years
    assert folded.word_id("PaRiS") == folded.word_id("paris") and folded.word_id("3000") == folded.word_id("0000")
    # the characters are read as written: case and digits stay apart
    assert folded.char_ids("Paris") != folded.char_ids("paris") and folded.char_ids("2024") != folded.char_ids("1999")
    assert {"P", "p", "A", "1", "2"} <= set(folded.chars)


def test_vocabulary_is_saved_as_json_and_read_back(tmp_path):
    vocabulary = WordVocabulary.build([post("a", "Zoë met Zoë in Köln")], lowercase=True)
    (written,) = vocabulary.save_pretrained(tmp_path)
    assert Path(written) == tmp_path / VOCABULARY_NAME
    values = json.loads(Path(written).read_text(encoding="utf-8"))
    assert values["words"] == vocabulary.words and values["lowercase"] is True
    loaded = WordVocabulary.from_pretrained(tmp_path)
    assert loaded.to_dict() == vocabulary.to_dict()
    assert loaded.word_id("ZOË") == vocabulary.word_id("zoë") == 2
    Path(written).write_text('{"format": "something else"}', encoding="utf-8")
    with pytest.raises(MmieError, match="not a word vocabulary"):
        WordVocabulary.from_pretrained(tmp_path)
    with pytest.raises(MmieError, match="has no vocabulary.json"):
        WordVocabulary.from_pretrained(tmp_path / "elsewhere")


def test_the_vocabulary_comes_from_the_records_it_is_given_and_only_word_models_build_one(tiny_bert):
    train_posts = [post("a", "alice visited paris", "B-PER O B-LOC")]
    vocabulary = create_vocabulary({"name": "hbilstm_crf"}, train_posts)
    assert vocabulary.words[2:] == ["alice", "paris", "visited"]
    assert get_model_entry("hbilstm_crf").builds_vocabulary and not get_model_entry("bert_crf").builds_vocabulary
    assert create_vocabulary({"name": "bert_crf", "encoder": tiny_bert}).is_fast  # the encoder's tokenizer
    with pytest.raises(ConfigError, match="builds its vocabulary from the training split"):
        create_vocabulary({"name": "hbilstm_crf"})
    subwords = create_vocabulary({"name": "bert_crf", "encoder": tiny_bert})
    with pytest.raises(TypeError, match="needs the WordVocabulary"):
        word_ner_processor(model_config({"name": "bilstm_crf"}), subwords, ["O"])
    # the config's lookup rules and the vocabulary's must agree (cnn_bilstm_crf lowercases)
    with pytest.raises(ConfigError, match="model.lowercase: True, but the vocabulary was built with lowercase False"):
        create_processor({"name": "cnn_bilstm_crf"}, vocabulary, ["O"])


def test_a_bilstm_config_has_no_pretrained_encoder_to_name(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("task: ner\nmodel: {name: cnn_bilstm_crf}\ndata: {train: t.txt}\n", encoding="utf-8")
    assert load_config(config).model.encoder == "none"
    with pytest.raises(ConfigError, match="model.encoder"):
        load_config(config, ["model.encoder=bert-base-uncased"])


# ------------------------------------------------------------------------ character encoders


def char_ids(*words: list[int], length: int | None = None) -> torch.Tensor:
    """``[1, words, length]`` character ids, each word left-aligned and padded with 0."""
    length = length or max(len(word) for word in words)
    return torch.tensor([[word + [PAD_ID] * (length - len(word)) for word in words]])


ENCODERS = {
    "cnn": lambda: CharacterCnn(alphabet_size=12, char_dim=6, filters=30, window=3, dropout=0.0),
    "bilstm": lambda: CharacterBiLstm(alphabet_size=12, char_dim=6, hidden_size=5, dropout=0.0),
}


def make_padding_visible(encoder: torch.nn.Module) -> None:
    """Parameters under which reading a padding position would change the output: positive character
    embeddings, negative weights, positive biases (an empty CNN window, tanh(b), would beat every
    window holding a character)."""
    with torch.no_grad():
        for name, parameter in encoder.named_parameters():
            if name.startswith("embeddings"):
                parameter.abs_()
            elif "bias" in name:
                parameter.fill_(0.5)
            else:
                parameter.copy_(-parameter.abs())


@pytest.mark.parametrize("kind", sorted(ENCODERS))
def test_the_character_encoder_sees_every_character_and_never_the_padding(kind):
    torch.manual_seed(0)
    encoder = ENCODERS[kind]().eval()
    word = [3, 4, 5, 6, 7, 8, 9]
    with torch.no_grad():
        alone = encoder(char_ids(word))[0, 0]
        for position in range(len(word)):  # any single character changed changes the word's vector
            changed = list(word)
            changed[position] = 10
            assert not torch.allclose(encoder(char_ids(changed))[0, 0], alone), position
    for parameters in ("random", "padding made visible"):
        if parameters != "random":
            make_padding_visible(encoder)
        with torch.no_grad():
            alone = encoder(char_ids(word))[0, 0]
            # padding: a longer batch, a longer neighbour, a padding word beside it change nothing
            assert torch.allclose(encoder(char_ids(word, length=20))[0, 0], alone, atol=1e-6), parameters
            beside = encoder(char_ids([2] * 15, word, []))
            assert torch.allclose(beside[0, 1], alone, atol=1e-6), parameters
            assert torch.equal(beside[0, 2], torch.zeros(encoder.output_dim))  # a padding word: zeros
    assert encoder(torch.zeros(2, 0, 0, dtype=torch.long)).shape == (2, 0, encoder.output_dim)


def test_the_character_cnn_is_a_max_over_every_window_holding_a_character():
    """Ma & Hovy sec. 2.1: z_t = tanh(W [e_{t-w+1}; ...; e_t] + b) over the windows of the word padded
    with w - 1 zero vectors each side; the word's vector is the elementwise max over t."""
    torch.manual_seed(1)
    cnn = CharacterCnn(alphabet_size=12, char_dim=4, filters=7, window=3, dropout=0.0).eval()
    word = [5, 3, 9, 2]
    embedded = cnn.embeddings.weight[word]  # [n, d]
    padded = torch.cat([torch.zeros(2, 4), embedded, torch.zeros(2, 4)])  # w - 1 = 2 zero vectors each side
    weight, bias = cnn.conv.weight, cnn.conv.bias  # [filters, d, w]
    windows = [
        torch.tanh((weight * padded[t : t + 3].T[None]).sum((1, 2)) + bias) for t in range(len(word) + 2)
    ]  # n + w - 1 windows
    expected = torch.stack(windows).max(0).values
    with torch.no_grad():
        torch.testing.assert_close(cnn(char_ids(word, length=9))[0, 0], expected)


def test_the_character_bilstm_joins_the_forward_state_after_the_last_and_the_backward_after_the_first():
    """Lample et al. sec. 4.1: r = [->h after the last character ; <-h after the first]."""
    torch.manual_seed(2)
    encoder = CharacterBiLstm(alphabet_size=12, char_dim=4, hidden_size=3, dropout=0.0).eval()
    word = [5, 3, 9, 2, 7]
    with torch.no_grad():
        outputs, _ = encoder.lstm(encoder.embeddings.weight[word][None])  # the word alone, unpadded
        expected = torch.cat([outputs[0, -1, :3], outputs[0, 0, 3:]])
        torch.testing.assert_close(encoder(char_ids(word, [4], length=12))[0, 0], expected)


# ------------------------------------------------------------------------------- the model


@pytest.mark.parametrize("name", MODELS)
def test_a_post_is_tagged_the_same_alone_and_in_any_batch(name):
    records = make_ner_posts(12)
    model, processor = build(name, records)
    model.eval()
    with torch.no_grad():
        alone = model(**processor(records[:1], with_labels=False))
        batch = model(**processor(records, with_labels=False))
    words = len(records[0].tokens)
    torch.testing.assert_close(batch.logits[0, :words], alone.logits[0, :words])
    assert torch.equal(batch.predictions[0, :words], alone.predictions[0, :words])


@pytest.mark.parametrize("name", MODELS)
def test_words_seen_once_read_as_unknown_in_training_only(name):
    records = [post("a", "the cat saw the dog"), post("b", "the dog ran")]
    model, processor = build(name, records, singleton_unknown=1.0)
    batch = processor(records)
    word_ids = batch["word_ids"]
    unknown = model.word_embeddings.weight[UNKNOWN_ID]
    seen_once = word_ids >= model.singletons_from
    assert seen_once.sum() == 3 and (word_ids[~seen_once & batch["word_mask"]] >= 2).all()
    model.train()
    vectors = model.word_inputs(word_ids, batch["char_ids"])[..., : model.model_config.word_dim]
    assert torch.equal(vectors[seen_once], unknown.expand(3, -1))  # every singleton read as UNK (p = 1)
    assert torch.equal(vectors[~seen_once], model.word_embeddings(word_ids[~seen_once]))
    model.eval()
    evaluated = model.word_inputs(word_ids, batch["char_ids"])[..., : model.model_config.word_dim]
    assert torch.equal(evaluated, model.word_embeddings(word_ids))  # never at prediction time


def write_vectors(path: Path, vectors: dict[str, list[float]], header: bool = False) -> Path:
    lines = [f"{len(vectors)} {len(next(iter(vectors.values())))}"] if header else []
    lines += [" ".join([word, *map(str, values)]) for word, values in vectors.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("header", [False, True], ids=["glove", "word2vec-text"])
def test_word_vectors_from_a_file_land_in_their_words_rows(tmp_path, header):
    records = [post("a", "Alice visited Paris in 2024", "B-PER O B-LOC O O"), post("b", "bob visited rome")]
    file_vectors = {
        "alice": [0.5, -0.5, 0.25, 1.0],  # found after lowercasing "Alice"
        "visited": [1.0, 2.0, 3.0, 4.0],
        "0000": [0.0, 0.125, 0.0, -0.125],  # "2024" lowercased with its digits zeroed
        "rome": [-1.0, -2.0, -3.0, -4.0],
        "unrelated": [9.0, 9.0, 9.0, 9.0],  # not in the vocabulary: never kept
    }
    path = write_vectors(tmp_path / "vectors.txt", file_vectors, header)
    model, processor = build("hbilstm_crf", records, word_dim=4, word_vectors=str(path))
    vocabulary = processor.tokenizer
    rows = model.word_embeddings.weight.detach()
    for word, key in (("Alice", "alice"), ("visited", "visited"), ("2024", "0000"), ("rome", "rome")):
        assert torch.equal(rows[vocabulary.word_id(word)], torch.tensor(file_vectors[key])), word
    for word in ("Paris", "in", "bob"):  # missing from the file: random, and not from another word
        assert not any(torch.equal(rows[vocabulary.word_id(word)], torch.tensor(v)) for v in file_vectors.values())
        assert rows[vocabulary.word_id(word)].abs().sum() > 0
    assert torch.equal(rows[PAD_ID], torch.zeros(4))
    random_init, _ = build("hbilstm_crf", records, word_dim=4)  # without a file: random (same seed)
    assert not torch.equal(random_init.word_embeddings.weight[vocabulary.word_id("rome")], rows[2])


def test_word_vectors_of_another_size_or_a_missing_file_name_the_key(tmp_path):
    records = [post("a", "alice visited paris")]
    path = write_vectors(tmp_path / "v.txt", {"alice": [1.0, 2.0, 3.0]})
    with pytest.raises(ConfigError, match=r"model.word_dim: .* 4 dimensions but the vectors .* have 3"):
        build("bilstm_crf", records, word_dim=4, word_vectors=str(path))
    with pytest.raises(ConfigError, match="model.word_vectors: no such file"):
        build("bilstm_crf", records, word_vectors=str(tmp_path / "none.txt"))


def test_a_model_built_without_its_vocabulary_sizes_says_so():
    with pytest.raises(ConfigError, match="model.vocabulary_size"):
        create_model({"name": "cnn_bilstm_crf"}, ["O", "B-PER", "I-PER"])


# ----------------------------------------------------------------------- through the engine


@pytest.fixture(scope="module")
def tiny_ner(tmp_path_factory) -> dict[str, Path]:
    paths = write_splits(tmp_path_factory.mktemp("tiny-ner"), "ner", {"train": 48, "dev": 16, "test": 16})
    # a dev post with a word training never saw: it must not enter the vocabulary
    dev = list(read_dataset(paths["dev"]).records) + [post("unseen", "alice visited zanzibar", "B-PER O B-LOC")]
    write_dataset(dev, paths["dev"], "mnermi")
    return paths


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_it_learns_the_tiny_posts_through_the_engine_from_the_training_split_vocabulary(name, tiny_ner, tmp_path):
    config = {
        "task": "ner",
        "model": {"name": name},
        "data": {split: str(path) for split, path in tiny_ner.items()},
        "training": {
            "epochs": 8,
            "batch_size": 8,
            "learning_rate": 1e-2,
            "warmup_ratio": 0.0,
            "weight_decay": 0.0,
            "max_grad_norm": 5.0,
        },
    }
    result = train(config, output_dir=tmp_path / "run")
    assert result.metrics["dev"]["f1"] >= 0.95, result.summary["dev_history"]  # stated: 0.95 within 8 epochs
    files = {path.name for path in result.model_dir.iterdir()}
    assert files == {"config.json", "model.safetensors", VOCABULARY_NAME}  # no tokenizer, no pickle

    # the vocabulary is the training split's: exactly its words, nothing of dev or test
    train_words = {token for record in read_dataset(tiny_ner["train"]).records for token in record.tokens}
    loaded = mmie.load_model(result.model_dir, device="cpu")
    assert set(loaded.tokenizer.words[2:]) == train_words
    assert "zanzibar" not in train_words and loaded.tokenizer.word_id("zanzibar") == UNKNOWN_ID
    assert loaded.model.model_config.vocabulary_size == len(train_words) + 2

    # the saved model scores as the run did
    test_records = read_dataset(tiny_ner["test"]).records
    assert loaded.evaluate(test_records) == result.metrics["test"]


# ------------------------------------------------------------------------------- configs

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
DATASETS = {"twitter2017": "twitter", "twitter2015": "twitter", "mner_mi": "mnermi", "mner_mi_plus": "mnermi"}


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_every_bilstm_row_has_a_config_per_dataset_with_the_papers_sizes(dataset):
    rows = {row: load_config(CONFIGS / dataset / f"{row}.yaml") for row in MODELS}
    for row, config in rows.items():
        assert config.task == "ner" and config.model.name == row and config.model.encoder == "none"
        assert config.name == f"{dataset}-{row}" and config.data.format == DATASETS[dataset]
        assert config.model.word_vectors is None  # random initialization unless a file is named
        assert config.training.max_grad_norm == 5.0 and config.training.batch_size == 10  # both papers
        assert config.model.dropout == 0.5
    lample, ma_hovy, characters = rows["bilstm_crf"].model, rows["cnn_bilstm_crf"].model, rows["hbilstm_crf"].model
    assert (lample.word_dim, lample.hidden_size, lample.singleton_unknown, lample.lowercase) == (100, 100, 0.5, False)
    assert (characters.char_dim, characters.char_hidden_size, characters.hidden_size) == (25, 25, 100)
    assert (ma_hovy.char_dim, ma_hovy.char_filters, ma_hovy.char_window, ma_hovy.hidden_size) == (30, 30, 3, 200)
    assert ma_hovy.lowercase and ma_hovy.singleton_unknown == 0.0
