"""PCNN (piecewise convolutional neural network), the word-level text baseline of the MRE tables."""

from mmie.models.pcnn import pcnn  # noqa: F401
