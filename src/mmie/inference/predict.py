"""Model outputs -> prediction lines (the documented format of :mod:`mmie.evaluation.predictions`).

One code path for every prediction mmie makes: the final dev/test scores of ``mmie train``,
``mmie evaluate``, ``mmie predict`` and ``LoadedModel.predict``; so the scores of a run and of its
saved model agree. Predictions stream out batch by batch in input order, with a progress bar.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from mmie.data.schema import Post, RelationInstance
from mmie.errors import DataError
from mmie.evaluation.predictions import ner_prediction, re_prediction, score_predictions
from mmie.features.levitated import post_key
from mmie.features.text import META_KEY

if TYPE_CHECKING:
    from mmie.data.images import InMemoryImages
    from mmie.features.processor import Processor
    from mmie.models.base import ExtractionModel


def ner_tags(label_ids: Sequence[int], meta: dict, labels: Sequence[str]) -> list[str]:
    """Word tags of one post from its decoded label ids; words without a position are ``O``."""
    tags = ["O"] * meta["n_words"]
    for word, label_id in zip(meta["words"], label_ids):
        tags[word] = labels[int(label_id)]
    return tags


def tag_scores(output: Any, predicted: Sequence[Sequence[int]], features: Sequence[dict]) -> list[list[float]]:
    """Per post, each word's softmax probability of its predicted tag under the word scores ``logits``
    (for CRF models the emissions: a confidence, not the CRF's marginal); 0.0 for words with no position."""
    probabilities = output.logits.float().softmax(-1).cpu()
    rows = []
    for row, (labels, feature) in enumerate(zip(predicted, features)):
        meta = feature[META_KEY]
        scores = [0.0] * meta["n_words"]
        for position, (word, label_id) in enumerate(zip(meta["words"], labels)):
            scores[word] = round(float(probabilities[row, position, int(label_id)]), 6)
        rows.append(scores)
    return rows


def image_relevance(output: Any, batch: dict[str, torch.Tensor]) -> list[list[float]] | None:
    """Per-image relevance of each example, real images only, when the output carries one
    (``relevance [B, M]``: GLRA, FocalMRE); None for the others."""
    relevance = output.get("relevance")  # a ModelOutput field, None when the model has none
    if relevance is None or "image_mask" not in batch:
        return None
    mask = batch["image_mask"].bool().cpu()
    values = relevance.float().cpu()
    return [[round(float(v), 6) for v in values[row][mask[row]]] for row in range(len(values))]


def without_labels(feature: dict) -> dict:
    return {key: value for key, value in feature.items() if key != "labels"}


def _check_task(records: Sequence[Any], task: str) -> None:
    """A DataError when the records are not the model's task's (posts for NER, relation instances for RE)."""
    wanted = Post if task == "ner" else RelationInstance
    for index, record in enumerate(records):
        if not isinstance(record, wanted):
            kind = {Post: "a post (NER)", RelationInstance: "a relation instance (RE)"}.get(
                type(record), type(record).__name__
            )
            raise DataError(f"record {index} is {kind}, but the model is an {task.upper()} model", field="records")


class Predictor:
    """Runs a model over records, batch by batch, and yields prediction dicts in input order."""

    def __init__(
        self,
        model: ExtractionModel,
        processor: Processor,
        device: torch.device | str | None = None,
        with_tag_scores: bool = False,
    ) -> None:
        """``processor``: the model's inputs (:func:`mmie.models.create_processor`; another config of the
        same model gives other inputs, e.g. the noisy crop dictionary of an Aug-Noise challenge set).
        ``with_tag_scores``: NER lines also carry ``tag_scores`` (see :func:`tag_scores`)."""
        self.model = model
        self.processor = processor
        self.with_tag_scores = with_tag_scores
        self.device = torch.device(device) if device is not None else next(model.parameters()).device

    @property
    def task(self) -> str:
        return self.model.task

    def iter_predictions(
        self,
        records: Sequence[Any],
        batch_size: int = 64,
        progress: bool = True,
        description: str = "predict",
        features: Sequence[dict] | None = None,
        images: InMemoryImages | None = None,
    ) -> Iterator[dict]:
        """Prediction lines of ``records`` in order. ``features``: the records' features when the caller
        has them already (training's dev split), so they are not computed again; ``images``: uploaded
        pictures the records name (a processor made for uploads)."""
        if features is not None and len(features) != len(records):
            raise ValueError(f"{len(features)} features for {len(records)} records")
        _check_task(records, self.task)
        was_training = self.model.training
        self.model.eval()
        bar = tqdm(total=len(records), unit="ex", desc=description, disable=not progress, dynamic_ncols=True)
        try:
            for start, end in self._chunks(records, batch_size):
                chunk = records[start:end]
                if features is None:
                    chunk_features = self.processor.featurize(chunk, with_labels=False, images=images)
                else:  # the model is not asked for a loss: labels stay out of the batch
                    chunk_features = [without_labels(f) for f in features[start:end]]
                yield from self._predict_batch(chunk, chunk_features)
                bar.update(len(chunk))
        finally:
            bar.close()
            self.model.train(was_training)

    def _chunks(self, records: Sequence[Any], batch_size: int) -> Iterator[tuple[int, int]]:
        """``(start, end)`` of each batch: ``batch_size`` records, or for a model that reads a post once for
        all its pairs, more when the next records are pairs of the same post, so a post is not cut in two
        (one pass for it, and the same post context for each of its pairs, however the batches fall)."""
        start = 0
        while start < len(records):
            end = min(start + batch_size, len(records))
            if self.model.reads_post_once:
                while end < len(records) and post_key(records[end - 1]) == post_key(records[end]):
                    end += 1
            yield start, end
            start = end

    @torch.inference_mode()
    def _predict_batch(self, records: Sequence[Any], features: list[dict]) -> Iterator[dict]:
        batch = {key: value.to(self.device) for key, value in self.processor.collate(features).items()}
        output = self.model(**batch)
        labels = self.model.labels
        if self.task == "ner":
            predicted = output.predictions.cpu().tolist()
            scores = tag_scores(output, predicted, features) if self.with_tag_scores else None
            for index, (record, feature, row) in enumerate(zip(records, features, predicted)):
                extras = {"tag_scores": scores[index]} if scores is not None else {}
                yield ner_prediction(record, ner_tags(row, feature[META_KEY], labels), **extras)
        else:
            probabilities = output.logits.float().softmax(-1).cpu().tolist()
            relevance = image_relevance(output, batch)
            for index, (record, row) in enumerate(zip(records, probabilities)):
                best = max(range(len(row)), key=row.__getitem__)
                label_scores = {label: round(p, 6) for label, p in zip(labels, row)}
                extras = {"relevance": relevance[index]} if relevance is not None else {}
                yield re_prediction(record, labels[best], label_scores, **extras)

    def predict(self, records: Sequence[Any], batch_size: int = 64, progress: bool = True) -> list[dict]:
        return list(self.iter_predictions(records, batch_size=batch_size, progress=progress))

    def evaluate(
        self, records: Sequence[Any], batch_size: int = 64, progress: bool = True, description: str = "evaluate"
    ) -> dict:
        """Metrics of the model on labelled records (with the by-number-of-images breakdown)."""
        predictions = list(self.iter_predictions(records, batch_size, progress, description))
        return score_predictions(records, predictions, task=self.task)
