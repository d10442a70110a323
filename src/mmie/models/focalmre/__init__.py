"""FocalMRE (focal augmentation, focal attention and gating)."""

from mmie.models.focalmre import focalmre  # noqa: F401
