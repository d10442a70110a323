"""GLRA (MRE-MI paper), its ablations, and the image RE baselines of its Table 2."""

from mmie.models.glra import glra, mre_image_baselines  # noqa: F401
