"""VisualPT-MoE (Xu et al., DASFAA 2023) and VisualPT-MoE-MI (MNER-MI paper, sec. 5.1), for NER."""

from mmie.models.visualpt_moe import visualpt_moe  # noqa: F401
