"""FocalMRE: focal augmentation, focal attention and gating (FocalMRE paper, shared/papers/003_*, sec. 3).

    h_text = BERT(x with entity markers)                                              (eq. 1)
    for every image and every VG region j (default 4) / OD region j (default 3):
        x_img  = the image with a frame drawn around region j  (focal augmentation, sec. 3.3)
        h_img  = VisualEncoder(x_img)        patch features [P, D] (frozen, feature cache) (eq. 2)
        h^_img = softmax((h_text Wq)(h_img Wk)^T / sqrt(d)) (h_img Wv)   one head, dropout 0.1 (eq. 3)
        lambda = sigmoid(U h_text + V h^_img);  h_out = (1 - lambda) h_text + lambda h^_img   (eq. 4)
    H^VG = w_vg x [h_out^VG_1 .. h_out^VG_n]    learned weights over the VG set; same for OD       (eq. 5)
    z = [H^VG[head_start]; H^VG[tail_start]; H^OD[head_start]; H^OD[tail_start]]                   (eq. 6)
    r = argmax MLP(z)                                                                              (eq. 7)

(Eq. 6 as printed lists H^OD[head_start] twice; the text says "the vectors corresponding to the head
and tail entities" of both sets: four vectors.)

Exact shortcut: eq. 3-5 act on every text position independently (the queries do not interact) and
eq. 6 reads only the two start markers, so only those two rows are computed: the same z for 1/64 of
the work at max length 128.

Choices the paper leaves open, made here: eq. 5's weights are a softmax over learned scores
``w_vg [n_vg]`` (initialised equal: a plain average), renormalised over the augmented images that
exist (padding and missing regions are masked); with several images (MRE-MI, which the paper never
ran) the VG set is every (image, VG region) pair, region j of every image sharing the score w_vg[j].
A post whose sets are empty (no image, no region) gets the text vectors: z = [h_<s>; h_<o>; h_<s>; h_<o>].
The gate is per dimension (U, V: d x d). The MLP is Linear(4d, d) -> tanh -> dropout -> Linear(d, |Y|).

Text-only switch (``use_images: false``): no vision encoder, no focal attention, gate or eq. 5 weights;
every set is the text vectors, z = [h_<s>; h_<o>; h_<s>; h_<o>] (without an OD set: [h_<s>; h_<o>]) and
eq. 7 reads it -- exactly what the full model does for a post without images, with nothing else built.

Switches: Table 3 -- ``focal_attention: false`` replaces eq. 3 by the projected mean of the patches
(no text-to-patch attention), ``gating: false`` replaces eq. 4 by a fixed lambda = 1/2; both false is
"w/o Either". Table 5 -- ``image_input``: ``focal`` (framed copies, the default), ``cropped`` (the
regions cut out: no global context) or ``original`` (the image itself once in each set: no focus).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from mmie.errors import ConfigError
from mmie.features.processor import focal_relation_processor
from mmie.models.base import RelationClassificationOutput
from mmie.models.focalmre.configuration import FocalMreConfig
from mmie.models.glra.image_relation import ImageRelationModel
from mmie.models.layers.gate import TextImageGate
from mmie.models.layers.relevance_attention import RelevanceModulatedAttention
from mmie.models.registry import register_model

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from mmie.encoders.vision import VisionEncoder


@dataclass
class FocalMreOutput(RelationClassificationOutput):
    """``relevance [B, M]``: the mean gate lambda of each image's focal copies at the two markers (how
    much of the image the model let in; 0 for padded images, None without gating); ``focal_weights
    [B, M, S]``: eq. 5's weight of each augmented image (VG set then OD set, 0 where absent)."""

    relevance: torch.Tensor | None = None
    focal_weights: torch.Tensor | None = None


@register_model("focalmre", config=FocalMreConfig, processor=focal_relation_processor)
class FocalMreClassifier(ImageRelationModel):
    """FocalMRE: gated focal attention of the entity markers over framed copies of each image (VG + OD sets)."""

    output_class = FocalMreOutput
    model_config: FocalMreConfig

    def __init__(
        self,
        config: FocalMreConfig,
        labels: list[str],
        text_encoder: PreTrainedModel,
        vision_encoder: VisionEncoder | None = None,  # None with the text-only switch
    ) -> None:
        super().__init__(config, labels, text_encoder, vision_encoder)
        self.n_vg, self.n_od = config.focal_sets
        d = self.hidden_size
        if not self.uses_images:  # the text-only switch: eq. 6-7 over the text vectors
            self.classifier = self.relation_mlp(config, len(labels))
            return
        if not config.freeze_vision:
            raise ConfigError("model.freeze_vision: FocalMRE reads frozen patch features of its focal copies (cache)")
        if self.n_vg == 0:
            raise ConfigError("model.regions_per_image: FocalMRE needs at least one VG region")
        if config.focal_attention:  # eq. 3, one head: plain cross-modal attention with masking
            self.attention = RelevanceModulatedAttention(d, self.image_dim, heads=1, relevance_modulation=False)
        else:
            self.image_projection = nn.Linear(self.image_dim, d)
        self.attention_dropout = nn.Dropout(config.attention_dropout)
        if config.gating:
            self.gate = TextImageGate(d)  # eq. 4
        self.vg_weights = nn.Parameter(torch.zeros(self.n_vg))  # eq. 5, w_vg
        self.od_weights = nn.Parameter(torch.zeros(self.n_od)) if self.n_od else None  # w_od
        self.classifier = self.relation_mlp(config, len(labels))

    def relation_mlp(self, config: FocalMreConfig, labels: int) -> nn.Sequential:
        """Eq. 7's MLP over z: 2 vectors per set -> d -> |Y|."""
        d, sets = self.hidden_size, 1 + int(self.n_od > 0)
        return nn.Sequential(nn.Linear(2 * sets * d, d), nn.Tanh(), nn.Dropout(config.dropout), nn.Linear(d, labels))

    # ------------------------------------------------------------------------- running

    def attend(self, markers: torch.Tensor, patches: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Eq. 3 for every augmented image: markers ``[B, 2, d]``, patches ``[B, M, S, P, D]``, mask ``[B, M, S]``
        -> h^_image ``[B, M, S, 2, d]`` (0 for absent images)."""
        batch, slots, sets, patch_count, dim = patches.shape
        flat = patches.reshape(batch * slots * sets, patch_count, dim)  # one attention per augmented image
        real = mask.reshape(-1)
        if self.model_config.focal_attention:
            queries = markers.repeat_interleave(slots * sets, dim=0)  # [B*M*S, 2, d]
            keys_mask = real[:, None].expand(-1, patch_count)
            context = self.attention(queries, flat, keys_mask).context  # [B*M*S, 2, d]
        else:  # w/o focal attention: the image's mean patch, projected, for both markers
            context = self.image_projection(flat.mean(dim=1, keepdim=True)).expand(-1, 2, -1)
            context = context * real[:, None, None].to(context.dtype)
        return self.attention_dropout(context).reshape(batch, slots, sets, 2, -1)

    def fuse(
        self, fused: torch.Tensor, mask: torch.Tensor, scores: torch.Tensor, markers: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. 5 over one set: ``fused [B, M, n, 2, d]``, ``mask [B, M, n]``, ``scores [n]`` -> ``[B, 2, d]`` and
        the weights ``[B, M, n]`` (softmax over the present images; the text vectors where none is present)."""
        batch, slots, n = mask.shape
        logits = scores.view(1, 1, n).expand(batch, slots, n).reshape(batch, -1)
        present = mask.reshape(batch, -1)
        logits = logits.masked_fill(~present, torch.finfo(logits.dtype).min)
        weights = logits.softmax(dim=-1) * present.to(logits.dtype)  # exactly 0 where absent
        pooled = torch.einsum("bk,bkqd->bqd", weights, fused.reshape(batch, slots * n, 2, -1))
        pooled = torch.where(present.any(dim=-1)[:, None, None], pooled, markers)
        return pooled, weights.reshape(batch, slots, n)

    # Takes the batch of its own processor (focal copies, no image or region inputs), not the base's.
    def forward(  # type: ignore[override]
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        head_start: torch.Tensor,
        tail_start: torch.Tensor,
        image_mask: torch.Tensor | None = None,  # None (and the focal inputs): the text-only switch's batch
        focal_mask: torch.Tensor | None = None,
        focal_features: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> FocalMreOutput:
        hidden = self.encode_text(input_ids, attention_mask, token_type_ids)  # eq. 1
        markers = self.marker_vectors(hidden, head_start, tail_start)  # [B, 2, d]: h_text at the start markers
        if not self.uses_images:  # the text-only switch: every set is the text vectors (eq. 6), images never read
            z = markers.repeat(1, 1 + int(self.n_od > 0), 1).flatten(1)  # [h_<s>; h_<o>](; [h_<s>; h_<o>])
            logits = self.classifier(self.dropout(z))  # eq. 7
            return FocalMreOutput(loss=self.loss(logits, labels), logits=logits)
        if image_mask is None or focal_mask is None or focal_features is None:
            raise ValueError(f"{type(self).__name__} reads images: its batch needs image_mask and the focal inputs")
        patches = focal_features.to(hidden.dtype)  # [B, m, S, P, D], stored as float16; m <= M real slots
        slots = patches.shape[1]
        mask = focal_mask[:, :slots].bool() & image_mask[:, :slots].bool().unsqueeze(-1)  # [B, m, S]
        image_context = self.attend(markers, patches, mask)  # eq. 3, [B, M, S, 2, d]
        text = markers[:, None, None]  # [B, 1, 1, 2, d]
        if self.model_config.gating:
            fused, gate = self.gate(text, image_context)  # eq. 4
        else:  # w/o gating: text and image in equal parts
            fused, gate = 0.5 * (text + image_context), None
        vg, vg_weights = self.fuse(fused[:, :, : self.n_vg], mask[:, :, : self.n_vg], self.vg_weights, markers)
        parts, weights = [vg], [vg_weights]
        if self.od_weights is not None:
            od, od_weights = self.fuse(fused[:, :, self.n_vg :], mask[:, :, self.n_vg :], self.od_weights, markers)
            parts.append(od)
            weights.append(od_weights)
        z = torch.cat(parts, dim=1).flatten(1)  # eq. 6: [H^VG_head; H^VG_tail; H^OD_head; H^OD_tail]
        logits = self.classifier(self.dropout(z))  # eq. 7
        relevance = None
        if gate is not None:
            per_copy = gate.mean(dim=(-1, -2)) * mask.to(gate.dtype)  # [B, m, S]
            relevance = _to_slots(per_copy.sum(-1) / mask.sum(-1).clamp(min=1).to(gate.dtype), image_mask.shape[1])
        focal_weights = _to_slots(torch.cat(weights, -1), image_mask.shape[1])
        return FocalMreOutput(
            loss=self.loss(logits, labels), logits=logits, relevance=relevance, focal_weights=focal_weights
        )


def _to_slots(values: torch.Tensor, slots: int) -> torch.Tensor:
    """``[B, m, ...]`` -> ``[B, M, ...]``, zeros in the slots past the batch's largest post."""
    padding = [0, 0] * (values.dim() - 2) + [0, slots - values.shape[1]]
    return nn.functional.pad(values, padding)
