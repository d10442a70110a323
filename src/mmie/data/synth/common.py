"""Pieces shared by the MNER and MRE planners: the planned post, template filling, image plans."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from mmie.data.schema import Post, RelationInstance, Span
from mmie.data.synth import vocab
from mmie.data.synth.images import BACKGROUND_COLOURS, ImagePlan
from mmie.data.synth.settings import SynthMix

# Number of images per post, 1..4: multi-image posts dominate as in MNER-MI / MRE-MI, so the cue
# image is the first one in a bit under half of the ambiguous posts.
N_IMAGES_WEIGHTS = (0.15, 0.30, 0.25, 0.30)
SPLIT_FRACTIONS = (("train", 0.70), ("val", 0.15), ("test", 0.15))
# The template slot that holds a (first) entity of each type; a second person goes into "B".
SLOT_OF_TYPE = {"PER": "A", "ORG": "O", "LOC": "L", "MISC": "M"}


@dataclass
class SynthPost:
    """One planned post: the record the dataset file holds, its image plans, and the ground truth
    about the cue (``meta``) that goes to the sidecar ``synth_meta.jsonl`` only."""

    record: Post | RelationInstance
    images: list[ImagePlan]
    meta: dict[str, Any] = field(default_factory=dict)


def post_rng(task: str, seed: int, index: int) -> random.Random:
    # One independent stream per post: a post does not change when the number of posts does.
    # (random.Random seeds a str through sha512, independent of PYTHONHASHSEED.)
    return random.Random(f"mmie-synth:{task}:{seed}:{index}")


def image_plans(
    post_id: str, rng: random.Random, cue: str | None, scale: str = "large"
) -> tuple[list[ImagePlan], int | None]:
    """1..4 image plans; when ``cue`` is given it sits in one image, uniformly among the positions,
    drawn at ``scale`` (``large`` or ``small``)."""
    n_images = rng.choices((1, 2, 3, 4), weights=N_IMAGES_WEIGHTS)[0]
    cue_index = rng.randrange(n_images) if cue is not None else None
    plans = [
        ImagePlan(
            name=f"{post_id}_{k}.jpg",
            cue=cue if k == cue_index else None,
            seed=rng.getrandbits(32),
            scale=scale if k == cue_index else "large",
        )
        for k in range(n_images)
    ]
    return plans, cue_index


def several_images(rng: random.Random) -> int:
    """2..4 images (distractor and order posts need two or more), in the shares of 2..4 above."""
    return rng.choices((2, 3, 4), weights=N_IMAGES_WEIGHTS[1:])[0]


def distractor_plans(
    post_id: str, rng: random.Random, n_images: int, relevant: int, cue: str | None, other_cues: list[str]
) -> tuple[list[ImagePlan], list[str]]:
    """Distractor posts: image ``relevant`` shows ``cue`` (None: no cue), the others ``other_cues`` in
    turn; every image has a background of its own named colour (drawn without repetition)."""
    if len(other_cues) != n_images - 1:
        raise ValueError(f"{n_images} images need {n_images - 1} other cues, got {len(other_cues)}")
    colours = rng.sample(sorted(BACKGROUND_COLOURS), n_images)
    cues: list[str | None] = list(other_cues)
    cues.insert(relevant, cue)
    plans = [
        ImagePlan(name=f"{post_id}_{k}.jpg", cue=cues[k], seed=rng.getrandbits(32), background=colours[k])
        for k in range(n_images)
    ]
    return plans, colours


def order_plans(
    post_id: str, rng: random.Random, n_images: int, earlier_cue: str, later_cue: str
) -> tuple[list[ImagePlan], tuple[int, int]]:
    """Order posts: two images at positions i < j drawn uniformly show ``earlier_cue`` (i) and
    ``later_cue`` (j); the other images show no cue."""
    first, second = sorted(rng.sample(range(n_images), 2))
    cues = {first: earlier_cue, second: later_cue}
    plans = [ImagePlan(name=f"{post_id}_{k}.jpg", cue=cues.get(k), seed=rng.getrandbits(32)) for k in range(n_images)]
    return plans, (first, second)


def mechanism_meta(mix: SynthMix, setting: str, images: list[ImagePlan], deciding_image: int | None) -> dict:
    """The keys a non-default mix adds to every meta line (the default mix adds none: its lines keep
    the bytes of before): the setting, the image that decides, every image's cue, scale and colour."""
    if mix.is_default:
        return {}
    return {
        "setting": setting,
        "deciding_image": deciding_image,
        "image_cues": [plan.cue for plan in images],
        "image_scales": [plan.scale if plan.cue is not None else None for plan in images],
        "image_colours": [plan.background for plan in images],
    }


def person_name(rng: random.Random) -> str:
    return f"{rng.choice(vocab.FIRST_NAMES)} {rng.choice(vocab.LAST_NAMES)}"


def name_of_type(entity_type: str, rng: random.Random) -> str:
    if entity_type == "PER":
        return person_name(rng)
    pools = {"ORG": vocab.ORGANISATIONS, "LOC": vocab.LOCATIONS, "MISC": vocab.MISC_NAMES}
    return rng.choice(pools[entity_type])


def fill_template(template: str, slots: dict[str, str]) -> tuple[list[str], dict[str, Span]]:
    """Tokenise a template on spaces and put each slot's name in place; returns the tokens and the
    token span ``[start, end)`` of every slot that occurs."""
    tokens: list[str] = []
    spans: dict[str, Span] = {}
    for piece in template.split():
        if piece.startswith("{") and piece.endswith("}"):
            name = slots[piece[1:-1]]
            start = len(tokens)
            tokens.extend(name.split())
            spans[piece[1:-1]] = Span(start, len(tokens), name)
        else:
            tokens.append(piece)
    return tokens, spans


def split_sizes(total: int) -> dict[str, int]:
    """70/15/15 with at least one post in each split."""
    val = max(1, round(total * SPLIT_FRACTIONS[1][1]))
    test = max(1, round(total * SPLIT_FRACTIONS[2][1]))
    return {"train": total - val - test, "val": val, "test": test}


def synthetic_url(post_id: str) -> str:
    # example.org is reserved for documentation: nobody mistakes these posts for real tweets.
    return f"https://example.org/mmie-synthetic/status/{post_id}"
