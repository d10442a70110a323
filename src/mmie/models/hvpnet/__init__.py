"""HVPNeT (Chen et al., NAACL Findings 2022) and HVPNeT-MI, for NER and RE."""

from mmie.models.hvpnet import hvpnet, hvpnet_re  # noqa: F401
