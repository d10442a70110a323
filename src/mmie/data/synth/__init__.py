"""SYNTHETIC multimodal posts for demos and for testing that image pathways learn.

Not a benchmark: the posts, names and images are generated. On a share of the posts the text leaves
the label open and ONE of the 1..4 images (often not the first) decides it, as the MNER-MI and
MRE-MI papers describe for real posts. See docs/synthetic.md.
"""

from mmie.data.synth.common import AMBIGUOUS_SHARE, SynthPost
from mmie.data.synth.images import CUE_DRAWERS, ImagePlan, RenderedImage, grounding_boxes, render_image
from mmie.data.synth.mner import MNER_CUES, plan_mner
from mmie.data.synth.mre import MRE_CUES, MRE_LABELS, plan_mre
from mmie.data.synth.writer import (
    DEFAULT_POSTS,
    DEFAULT_SEED,
    META_FILE,
    SynthSummary,
    generate_dataset,
    plan_posts,
)

__all__ = [
    "AMBIGUOUS_SHARE",
    "CUE_DRAWERS",
    "DEFAULT_POSTS",
    "DEFAULT_SEED",
    "META_FILE",
    "MNER_CUES",
    "MRE_CUES",
    "MRE_LABELS",
    "ImagePlan",
    "RenderedImage",
    "SynthPost",
    "SynthSummary",
    "generate_dataset",
    "grounding_boxes",
    "plan_mner",
    "plan_mre",
    "plan_posts",
    "render_image",
]
