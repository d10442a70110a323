"""promptMNER: entity-type prompts scored against the image by CLIP, the clues fused into BERT-CRF (Wang et al., DASFAA 2022)."""

from mmie.models.promptmner import promptmner  # noqa: F401
