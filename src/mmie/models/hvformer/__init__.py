"""HVFormer and HVFormer-MI (hierarchical vision levels mixed by a router)."""

from mmie.models.hvformer import hvformer  # noqa: F401
