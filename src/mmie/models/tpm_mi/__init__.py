"""TPM-MI (MNER-MI paper) and the visual-prefix baselines of its Table 3."""

from mmie.models.tpm_mi import prefix_baselines, tpm_mi  # noqa: F401
