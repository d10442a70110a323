"""OCSGA: embedded visual guiding objects for MNER (Wu et al., ACM MM 2020)."""

from mmie.models.ocsga import ocsga  # noqa: F401
