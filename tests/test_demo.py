"""The demo's last step: one synthetic test post through the trained models, as a newcomer reads it."""

from __future__ import annotations

import json

from mmie.data import read_dataset
from mmie.demo import _extract_one
from mmie.pipeline import Extractor


def test_the_extraction_step_prints_one_line_per_finding_and_writes_the_whole_answer(
    extraction_models, tmp_path, capsys
):
    # The demo reads its models from runs/mner_tpm_mi and runs/mre_glra: the session's tiny trained
    # NER and GLRA models stand there, and the post is the first test post of GLRA's synthetic sample.
    runs = tmp_path / "demo_out" / "runs"
    for name, model in (("mner_tpm_mi", extraction_models.ner), ("mre_glra", extraction_models.re)):
        (runs / name).mkdir(parents=True)
        (runs / name / "model").symlink_to(model, target_is_directory=True)
    sample = extraction_models.images.parent
    _extract_one(sample, runs)

    printed = capsys.readouterr().out.splitlines()
    answer = json.loads((tmp_path / "demo_out" / "extraction.json").read_text(encoding="utf-8"))
    post = read_dataset(sample / "test.txt").records[0].post
    images = [(sample / "images" / ref).read_bytes() for ref in post.images]
    expected = Extractor.from_pretrained(ner=runs / "mner_tpm_mi" / "model", re=runs / "mre_glra" / "model")(
        " ".join(post.tokens), images=images, id=answer["id"]
    )
    assert json.loads(json.dumps(expected)) == answer  # the whole answer, tokens and image relevance included

    assert f"text: {answer['text']}  ({len(images)} images)" in printed
    entity_lines = [line for line in printed if line.startswith("  entity ")]
    relation_lines = [line for line in printed if line.startswith("  relation ")]
    assert answer["entities"] and len(entity_lines) == len(answer["entities"])
    assert len(relation_lines) == len(answer["relations"])
    for line, entity in zip(entity_lines, answer["entities"]):
        assert f"{entity['text']!r} {entity['type']} [{entity['start']}:{entity['end']}]" in line
    for line, relation in zip(relation_lines, answer["relations"]):
        head, tail = answer["entities"][relation["head"]]["text"], answer["entities"][relation["tail"]]["text"]
        assert f"{head!r} -> {tail!r} {relation['relation']}" in line
    assert "{" not in "\n".join(printed)  # no JSON on the terminal
    assert any(line.startswith("  mmie serve --ner ") for line in printed)
