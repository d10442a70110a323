"""MKGformer (hybrid Transformer with multi-level fusion), as its authors run it for MRE."""

from mmie.models.mkgformer import mkgformer  # noqa: F401
