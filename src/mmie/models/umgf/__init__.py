"""UMGF (Zhang et al., AAAI 2021), its multi-image row UMGF-MI (MNER-MI paper), and UMGF for RE."""

from mmie.models.umgf import umgf, umgf_re  # noqa: F401
