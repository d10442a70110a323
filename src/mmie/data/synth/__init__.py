"""SYNTHETIC multimodal posts for demos and for testing that image pathways learn.

Not a benchmark: the posts, names and images are generated. On a share of the posts the text leaves
the label open and ONE of the 1..4 images (often not the first) decides it, as the MNER-MI and
MRE-MI papers describe for real posts. Non-default mixes (``SynthMix``, ``PRESETS["mechanisms"]``) add
posts decided by a small cue, by the image the text names among distractors, or by the order of two
cues. See docs/synthetic.md.
"""

from mmie.data.synth.common import SynthPost
from mmie.data.synth.images import (
    BACKGROUND_COLOURS,
    CUE_DRAWERS,
    ImagePlan,
    RenderedImage,
    grounding_boxes,
    render_image,
)
from mmie.data.synth.mner import MNER_CUES, plan_mner
from mmie.data.synth.mre import MRE_CUES, MRE_LABELS, plan_mre
from mmie.data.synth.settings import (
    AMBIGUOUS_SHARE,
    PRESETS,
    SETTINGS,
    SynthMix,
    deciding_setting,
    read_settings,
    resolve_mix,
)
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
    "BACKGROUND_COLOURS",
    "CUE_DRAWERS",
    "DEFAULT_POSTS",
    "DEFAULT_SEED",
    "META_FILE",
    "MNER_CUES",
    "MRE_CUES",
    "MRE_LABELS",
    "PRESETS",
    "SETTINGS",
    "ImagePlan",
    "RenderedImage",
    "SynthPost",
    "SynthMix",
    "SynthSummary",
    "deciding_setting",
    "generate_dataset",
    "grounding_boxes",
    "plan_mner",
    "plan_mre",
    "plan_posts",
    "read_settings",
    "render_image",
    "resolve_mix",
]
