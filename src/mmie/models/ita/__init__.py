"""ITA: image-text alignments for MNER (Wang et al., NAACL 2022)."""

from mmie.models.ita import ita  # noqa: F401
