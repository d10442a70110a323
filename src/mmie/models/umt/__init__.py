"""UMT (Yu et al. 2020), its multi-image row UMT-MI (MNER-MI paper), UMT with a relation head (the MRE
tables' UMT rows), and MAF (Xu et al. 2022), built on UMT."""

from mmie.models.umt import maf, umt, umt_re  # noqa: F401
