"""MEGA (Zheng et al., ACM MM 2021) and BERT+SG+Att (the MNRE paper's baseline): RE over a scene graph."""

from mmie.models.mega import bert_sg_att, mega  # noqa: F401
