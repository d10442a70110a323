"""The BiLSTM taggers of the MNER-MI paper's Table 3: the text rows BiLSTM-CRF, CNN-BiLSTM-CRF,
HBiLSTM-CRF, and the image rows built on them, GVATT-HBiLSTM-CRF and AdaCAN-CNN-BiLSTM-CRF."""

from mmie.models.bilstm import adacan_cnn_bilstm_crf, bilstm_crf, gvatt_hbilstm_crf  # noqa: F401
