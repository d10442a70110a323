"""Planning of synthetic MNER posts (MNER-MI layout).

An *ambiguous* post names one entity from :data:`vocab.AMBIGUOUS_NAMES` ("Phoenix", "Chelsea", ...)
in a neutral template; name and template are drawn independently of the entity type, and the type
is shown by ONE image: a face (PER), a badge/logo (ORG), a landscape (LOC) or a product (MISC).
A *telling* post decides its entity type in the text ("just landed in {E}") and its images carry no
cue. Either kind may end with a second, text-decided entity ("| photo by Emma Walker").

A non-default :class:`~mmie.data.synth.settings.SynthMix` adds the mechanism settings: the cue drawn
small (``small_cue``), every image with a cue of another type on its own named colour and the text
naming the colour of the one that decides (``distractor``), or two cues of two types where the
later one decides (``order``); see docs/synthetic.md.
"""

from __future__ import annotations

import random

from mmie.data.schema import Post
from mmie.data.synth import vocab
from mmie.data.synth.common import (
    SLOT_OF_TYPE,
    SynthPost,
    distractor_plans,
    fill_template,
    image_plans,
    mechanism_meta,
    name_of_type,
    order_plans,
    person_name,
    post_rng,
    several_images,
    synthetic_url,
)
from mmie.data.synth.images import ImagePlan
from mmie.data.synth.settings import SynthMix

# The visual cue of each entity type.
MNER_CUES = {"PER": "face", "ORG": "logo", "LOC": "landscape", "MISC": "product"}
# Telling posts use an ambiguous name this often (its type then comes from the cue words), so that
# the names themselves predict nothing.
AMBIGUOUS_NAME_IN_TELLING = 0.3
NO_ENTITY_SHARE = 0.1
CONTEXT_SHARE = 0.35
# The templates of the posts whose text leaves the type open, by deciding setting.
TEMPLATES = {
    "cue": vocab.MNER_NEUTRAL,
    "small_cue": vocab.MNER_NEUTRAL,
    "distractor": vocab.MNER_DISTRACTOR,
    "order": vocab.MNER_ORDER,
}


def _distractor_images(post_id: str, rng: random.Random, entity_type: str) -> tuple[list[ImagePlan], int, list[str]]:
    # Every image shows a cue; the other images those of other types (no type twice).
    n_images = several_images(rng)
    relevant = rng.randrange(n_images)
    others = rng.sample([kind for kind in vocab.ENTITY_TYPES if kind != entity_type], n_images - 1)
    images, colours = distractor_plans(
        post_id, rng, n_images, relevant, MNER_CUES[entity_type], [MNER_CUES[kind] for kind in others]
    )
    return images, relevant, colours


def _order_images(post_id: str, rng: random.Random, entity_type: str) -> tuple[list[ImagePlan], int]:
    # Two cues of two types; the LATER one is the entity's type ("then and now": now decides).
    earlier = rng.choice([kind for kind in vocab.ENTITY_TYPES if kind != entity_type])
    images, (_, later_index) = order_plans(
        post_id, rng, several_images(rng), MNER_CUES[earlier], MNER_CUES[entity_type]
    )
    return images, later_index


def plan_mner_post(index: int, seed: int, mix: SynthMix | None = None) -> SynthPost:
    mix = mix or SynthMix()
    rng = post_rng("mner", seed, index)
    post_id = str(index + 1)
    setting = mix.draw(rng)
    ambiguous = setting != "text"
    if ambiguous:
        entity_type = rng.choice(vocab.ENTITY_TYPES)
        template = rng.choice(TEMPLATES[setting])
        name = rng.choice(vocab.AMBIGUOUS_NAMES)
    elif rng.random() < NO_ENTITY_SHARE:
        entity_type, template, name = None, rng.choice(vocab.MNER_NO_ENTITY), None
    else:
        entity_type = rng.choice(vocab.ENTITY_TYPES)
        template = rng.choice(vocab.MNER_TELLING[entity_type])
        use_ambiguous_name = rng.random() < AMBIGUOUS_NAME_IN_TELLING
        name = rng.choice(vocab.AMBIGUOUS_NAMES) if use_ambiguous_name else name_of_type(entity_type, rng)

    types = {"E": entity_type}
    if entity_type is not None and rng.random() < CONTEXT_SHARE:
        suffix, context_type = rng.choice(vocab.MNER_CONTEXT)
        template = f"{template} {suffix}"
        types[SLOT_OF_TYPE[context_type]] = context_type
    slots = {
        "U": rng.choice(vocab.HANDLES),
        "A": person_name(rng),
        "O": rng.choice(vocab.ORGANISATIONS),
        "L": rng.choice(vocab.LOCATIONS),
        "M": rng.choice(vocab.MISC_NAMES),
    }
    if name is not None:
        slots["E"] = name
    cue_index: int | None
    if setting == "distractor":  # the text names the colour of the image that decides
        assert entity_type is not None  # an image-decided post always names an entity
        images, cue_index, colours = _distractor_images(post_id, rng, entity_type)
        slots["C"] = colours[cue_index]
    tokens, spans = fill_template(template, slots)

    tags = ["O"] * len(tokens)
    for slot, span in spans.items():
        slot_type = types.get(slot)
        if slot_type is None:  # a user handle or an unused slot
            continue
        tags[span.start] = f"B-{slot_type}"
        for position in range(span.start + 1, span.end):
            tags[position] = f"I-{slot_type}"

    cue = MNER_CUES[entity_type] if ambiguous and entity_type is not None else None
    if setting == "order":
        assert entity_type is not None
        images, cue_index = _order_images(post_id, rng, entity_type)
    elif setting != "distractor":
        images, cue_index = image_plans(post_id, rng, cue, scale="small" if setting == "small_cue" else "large")
    target = spans.get("E")
    meta = {
        "id": post_id,
        "ambiguous": ambiguous,
        "label": entity_type or "O",
        "cue": cue,
        "cue_image": cue_index,
        "n_images": len(images),
        "template": template,
        "entity": name,
        "entity_span": [target.start, target.end] if target else None,
        **mechanism_meta(mix, setting, images, cue_index),
    }
    record = Post(
        id=post_id, tokens=tokens, images=[plan.name for plan in images], url=synthetic_url(post_id), tags=tags
    )
    return SynthPost(record=record, images=images, meta=meta)


def plan_mner(posts: int, seed: int, mix: SynthMix | None = None) -> list[SynthPost]:
    return [plan_mner_post(index, seed, mix) for index in range(posts)]
