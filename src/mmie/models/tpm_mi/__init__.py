"""TPM-MI (MNER-MI paper), its relation head (the MRE-MI paper's TPM-MI row) and the visual-prefix
baselines of the MNER-MI paper's Table 3."""

from mmie.models.tpm_mi import prefix_baselines, tpm_mi, tpm_mi_re  # noqa: F401
