"""Models: one package per family, each config beside its model, every model registered by name.

    from mmie.models import create_model, create_processor, create_vocabulary, model_config
    config = model_config({"name": "bert_crf", "encoder": "minilm"})
    tokenizer = create_vocabulary(config, train_records)
    processor = create_processor(config, tokenizer, labels)
    model = create_model(processor.config, labels, tokenizer=tokenizer)

Families: ``text`` (BERT-softmax, BERT-CRF, BERT [CLS], MTB), ``bilstm`` (BiLSTM-CRF, CNN-BiLSTM-CRF,
HBiLSTM-CRF: word-level, no pretrained encoder), ``tpm_mi`` (TPM-MI and the visual-prefix
baselines), ``glra`` (GLRA, the image RE base and the MTB image baselines), ``focalmre``, ``umt``
(UMT, UMT-MI, MAF), ``hvpnet`` (HVPNeT and HVPNeT-MI, NER and RE), ``pcnn`` (word-level RE),
``mkgformer``, ``hvformer`` (HVFormer, HVFormer-MI), ``visualpt_moe`` (VisualPT-MoE, VisualPT-MoE-MI),
``umgf`` (UMGF, UMGF-MI, UMGF for RE), ``mega`` (MEGA, BERT+SG+Att: scene graphs), ``ita`` (ITA: image
text appended to the post, cross-view alignment), ``ocsga`` (OCSGA: object labels as text, dense
co-attention), ``pretrained_vl`` (VisualBERT and CLIP as RE baselines), ``promptmner`` (promptMNER: CLIP's scores of
entity-type prompts as visual clues). Shared layers live in
``layers``; the vision-encoder part of every image model in ``image_model``.
"""

from __future__ import annotations

# Importing a family registers its models. A new family adds its import here.
from mmie.models import (  # noqa: F401
    bilstm,
    focalmre,
    glra,
    hvformer,
    hvpnet,
    ita,
    mega,
    mkgformer,
    ocsga,
    pcnn,
    pretrained_vl,
    promptmner,
    text,
    tpm_mi,
    umgf,
    umt,
    visualpt_moe,
)
from mmie.models.base import ExtractionModel, ModelConfig
from mmie.models.registry import (
    create_model,
    create_processor,
    create_vocabulary,
    get_model_entry,
    list_models,
    model_config,
    register_model,
)

__all__ = [
    "ExtractionModel",
    "ModelConfig",
    "create_model",
    "create_processor",
    "create_vocabulary",
    "get_model_entry",
    "list_models",
    "model_config",
    "register_model",
]
