"""Configs of MEGA and BERT+SG+Att: marked text plus the scene graph of the post's first image.

Both read a precomputed scene-graph file (:class:`~mmie.features.settings.SceneGraphInputs`: its path,
its keys, the object slots and their feature size); mmie runs no scene-graph detector. Defaults are
the authors' (thecharm/Mega: 10 objects of 4096-d features, lr 2e-5, batch 32, 10 epochs).
"""

from __future__ import annotations

from mmie.features.settings import SceneGraphInputs, StructuralAlignmentInputs
from mmie.models.text.configuration import RelationModelConfig


class SceneGraphRelationConfig(RelationModelConfig, SceneGraphInputs):
    """A relation model over marked text and the objects of the first image's scene graph."""


class MegaConfig(SceneGraphRelationConfig, StructuralAlignmentInputs):
    name: str = "mega"


class BertSgAttConfig(SceneGraphRelationConfig):
    name: str = "bert_sg_att"
