"""`mmie llm` end to end against a real OpenAI-compatible server: `transformers serve` on 127.0.0.1
over a tiny random Llama the test builds and saves, on a few posts of the shared real data.

The tiny model answers gibberish, so what is checked is the plumbing: the requests the server logs,
the answers cached (a second run sends none), a run killed half-way keeps every answer it had, the
unparseable answers counted and kept, and the predictions and scores written where `mmie score`
and `mmie report` read them.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mmie.cli import main
from mmie.data import read_dataset
from mmie.evaluation.predictions import read_predictions, score_predictions

SHARED_DATA = Path(os.environ.get("MMIE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
needs_shared = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"shared data not found at {SHARED_DATA}")
pytest.importorskip("openai", reason="transformers serve needs the openai package (the test extra)")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {% if m['content'] is string %}{{ m['content'] }}"
    "{% else %}{% for p in m['content'] %}{% if p['type'] == 'text' %}{{ p['text'] }}{% endif %}{% endfor %}"
    "{% endif %}\n{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}"
)


def build_tiny_chat_model(path: Path) -> Path:
    """A 2-layer Llama (hidden 32) with a byte-level BPE tokenizer of 300 tokens and a chat template."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(['Person Organization Location Miscellaneous {"Person": []} Option A B C'], trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(path)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=2,
    )
    LlamaForCausalLM(config).save_pretrained(path)
    GenerationConfig(bos_token_id=0, eos_token_id=1, pad_token_id=2, do_sample=False).save_pretrained(path)
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, url: str, model: str, log: Path) -> None:
        self.url, self.model, self.log = url, model, log

    def chat_requests(self) -> int:
        """Chat completions the server answered, counted from its own access log."""
        return self.log.read_text(encoding="utf-8", errors="replace").count('"POST /v1/chat/completions HTTP/1.1" 200')


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import httpx

    root = tmp_path_factory.mktemp("serve")
    model = build_tiny_chat_model(root / "tiny-chat")
    port = _free_port()
    log = root / "serve.log"
    command = [sys.executable, "-m", "transformers.cli.transformers", "serve", str(model)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--device", "cpu", "--log-level", "info"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            if process.poll() is not None:
                pytest.fail(f"transformers serve exited ({process.returncode}):\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"transformers serve did not come up:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield Server(url, str(model), log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _run(server: Server, data: Path, out: Path, *extra: str) -> dict:
    main(["llm", str(data), "--out", str(out), "--url", server.url, "--model", server.model, *extra])
    return json.loads((out / "summary.json").read_text())


def _cached(folder: Path) -> list[Path]:
    return sorted(folder.glob("??/*.json"))


def _head(source: Path, target: Path, lines: int, posts_end_blank: bool = False) -> Path:
    """The first lines of a real split (whole posts for the CoNLL file): demonstrations come from here,
    which keeps reading the 12k-line training files out of the test's time."""
    text = source.read_text(encoding="utf-8").split("\n")[:lines]
    while posts_end_blank and text and text[-1].strip():  # end on a blank line: no post cut in half
        text.pop()
    target.write_text("\n".join(text) + "\n", encoding="utf-8")
    return target


@needs_shared
def test_ner_run_is_cached_resumes_after_a_kill_and_is_scored(server, tmp_path):
    data = _head(SHARED_DATA / "twitter2017" / "valid.txt", tmp_path / "valid.txt", 200, posts_end_blank=True)
    train = _head(SHARED_DATA / "twitter2017" / "train.txt", tmp_path / "train.txt", 400, posts_end_blank=True)
    out = tmp_path / "run"
    args = ["--train", str(train), "-k", "1", "--limit", "6", "--max-tokens", "12", "--concurrency", "1"]

    # 1. a run killed once two answers are cached
    before = server.chat_requests()
    command = [sys.executable, "-m", "mmie.cli", "llm", str(data), "--out", str(out)]
    command += ["--url", server.url, "--model", server.model, *args]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(_cached(out / "cache")) < 2 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.kill()
    process.wait()
    kept = _cached(out / "cache")
    assert 2 <= len(kept) < 6, "the kill came too late to test resuming"
    for path in kept:  # every cached answer whole: written atomically
        assert isinstance(json.loads(path.read_text())["answer"], str)
    asked_before_kill = server.chat_requests() - before
    assert asked_before_kill >= len(kept)

    # 2. the same command again asks only for what is not cached
    before = server.chat_requests()
    summary = _run(server, data, out, *args)
    assert server.chat_requests() - before == 6 - len(kept) == summary["requests"] == summary["asked"]
    assert summary["from_cache"] == len(kept) and summary["records"] == 6
    assert len(_cached(out / "cache")) == 6

    # every answer kept with its status; the unparseable ones counted
    answers = [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()]
    assert [row["index"] for row in answers] == list(range(6))
    assert summary["unparseable"] == sum(row["status"] == "unparseable" for row in answers) > 0
    assert all(isinstance(row["answer"], str) for row in answers)
    assert summary["tokens"]["prompt_tokens"] > 0 and summary["tokens"]["completion_tokens"] > 0

    # predictions in mmie's format, scored with mmie's metrics: the same as `mmie score` gives
    gold = read_dataset(data).records[:6]
    predictions = read_predictions(out / "predictions" / "test.jsonl")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"] == score_predictions(gold, predictions)
    assert metrics["test"]["support"] > 0
    assert (out / "config.yaml").is_file()

    # 3. a third run is served from the cache entirely: zero requests reach the server
    before = server.chat_requests()
    again = _run(server, data, out, *args)
    assert server.chat_requests() == before
    assert again["requests"] == 0 and again["from_cache"] == 6
    assert json.loads((out / "metrics.json").read_text())["test"] == metrics["test"]

    # the run folder is one `mmie report` reads beside trained models' runs
    main(["report", str(out), "--out", str(tmp_path / "report")])
    assert server.model in (tmp_path / "report" / "report.md").read_text()


@needs_shared
def test_re_run_with_demonstrations(server, tmp_path):
    data = _head(SHARED_DATA / "mnre" / "mnre_val.txt", tmp_path / "val.txt", 20)
    train = _head(SHARED_DATA / "mnre" / "mnre_train.txt", tmp_path / "train.txt", 300)
    out = tmp_path / "re"
    args = ["--train", str(train), "-k", "2", "--seed", "3", "--limit", "3", "--max-tokens", "6"]
    first = read_dataset(data).records[0]  # UN -> Libya: offered only the ORG-LOC labels
    types = tmp_path / "types.jsonl"
    head, tail = [first.head.start, first.head.end], [first.tail.start, first.tail.end]
    line = {"id": first.id, "head": head, "tail": tail, "head_type": "org", "tail_type": "LOC"}
    types.write_text(json.dumps(line) + "\n", encoding="utf-8")
    before = server.chat_requests()
    summary = _run(server, data, out, *args, "--entity-types", str(types))
    assert server.chat_requests() - before == 3 == summary["asked"]
    answers = [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()]
    assert summary["unparseable"] == sum(row["status"] == "unparseable" for row in answers)
    assert summary["unmapped"] == sum(row["status"] == "unmapped" for row in answers)
    assert answers[0]["options"] == {"A": "/org/loc/locate_at", "B": "None"}
    assert len(answers[1]["options"]) > 10  # no types known: every label of the training split
    predictions = read_predictions(out / "predictions" / "test.jsonl")
    assert [p["relation"] for p in predictions] == [row["label"] or "None" for row in answers]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"] == score_predictions(read_dataset(data).records[:3], predictions)
    # another seed draws other demonstrations: other questions, asked anew
    before = server.chat_requests()
    other = _run(server, data, out, *args[:4], "--seed", "4", "--limit", "3", "--max-tokens", "6")
    assert other["asked"] == 3 and server.chat_requests() - before == 3
