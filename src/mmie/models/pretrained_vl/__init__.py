"""The pretrained vision-language RE baselines of the MRE tables: VisualBERT (single-stream) and CLIP (dual-stream)."""

from mmie.models.pretrained_vl import clip_re, visualbert_re  # noqa: F401
