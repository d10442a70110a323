"""Loading a local checkpoint shows no transformers "Loading weights" bar on the terminal, and leaves
transformers' progress-bar setting as it found it."""

from __future__ import annotations

from transformers.utils import logging as hf_logging

from mmie.encoders.text import load_text_encoder
from mmie.encoders.vision import load_vision_encoder
from test_glra import tiny_vit  # noqa: F401 - the fixture


def test_loading_local_encoders_prints_no_progress_bar(tiny_bert, tiny_vit, capfd):
    assert hf_logging.is_progress_bar_enabled()
    load_text_encoder(tiny_bert)
    load_vision_encoder(tiny_vit, frozen=True)
    assert "Loading weights" not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled()  # restored for the caller's own downloads
    hf_logging.disable_progress_bar()
    try:
        load_text_encoder(tiny_bert)
        assert not hf_logging.is_progress_bar_enabled()  # a caller's choice is kept
    finally:
        hf_logging.enable_progress_bar()


def test_growing_the_embeddings_for_markers_prints_no_notice(tiny_bert):
    """MTB's markers grow the embeddings (new rows from the old mean, transformers' default, on purpose):
    transformers' notice about it is not emitted, and its verbosity is restored."""
    import logging

    from mmie.models.registry import create_model, create_processor, create_vocabulary

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    hf_logging.add_handler(handler)
    verbosity = hf_logging.get_verbosity()
    logging.Logger.warning_once.cache_clear()  # type: ignore[attr-defined]  # transformers says it once per process
    try:
        settings = {"name": "mtb", "encoder": tiny_bert}
        tokenizer = create_vocabulary(settings, [])
        processor = create_processor(settings, tokenizer, ["None", "/per/per/peer"])
        model = create_model(processor.config, ["None", "/per/per/peer"], tokenizer=tokenizer)
    finally:
        hf_logging.remove_handler(handler)
    assert model.text_encoder.get_input_embeddings().num_embeddings == len(tokenizer)  # grown by the markers
    assert not [r for r in records if "multivariate normal" in r.getMessage()]
    assert hf_logging.get_verbosity() == verbosity
