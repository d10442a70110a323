"""UMT (Yu et al. 2020), its multi-image row UMT-MI (MNER-MI paper), and MAF (Xu et al. 2022), built on UMT."""

from mmie.models.umt import maf, umt  # noqa: F401
