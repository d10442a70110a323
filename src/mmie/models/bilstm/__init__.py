"""The BiLSTM taggers of the MNER-MI paper's text rows: BiLSTM-CRF, CNN-BiLSTM-CRF, HBiLSTM-CRF."""

from mmie.models.bilstm import bilstm_crf  # noqa: F401
