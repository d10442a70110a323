"""Planning of synthetic MNER posts (MNER-MI layout).

An *ambiguous* post names one entity from :data:`vocab.AMBIGUOUS_NAMES` ("Phoenix", "Chelsea", ...)
in a neutral template; name and template are drawn independently of the entity type, and the type
is shown by ONE image: a face (PER), a badge/logo (ORG), a landscape (LOC) or a product (MISC).
A *telling* post decides its entity type in the text ("just landed in {E}") and its images carry no
cue. Either kind may end with a second, text-decided entity ("| photo by Emma Walker").
"""

from __future__ import annotations

from mmie.data.schema import Post
from mmie.data.synth import vocab
from mmie.data.synth.common import (
    AMBIGUOUS_SHARE,
    SLOT_OF_TYPE,
    SynthPost,
    fill_template,
    image_plans,
    name_of_type,
    person_name,
    post_rng,
    synthetic_url,
)

# The visual cue of each entity type.
MNER_CUES = {"PER": "face", "ORG": "logo", "LOC": "landscape", "MISC": "product"}
# Telling posts use an ambiguous name this often (its type then comes from the cue words), so that
# the names themselves predict nothing.
AMBIGUOUS_NAME_IN_TELLING = 0.3
NO_ENTITY_SHARE = 0.1
CONTEXT_SHARE = 0.35


def plan_mner_post(index: int, seed: int) -> SynthPost:
    rng = post_rng("mner", seed, index)
    post_id = str(index + 1)
    ambiguous = rng.random() < AMBIGUOUS_SHARE
    cue: str | None = None  # only an ambiguous post shows the cue of its type
    if ambiguous:
        entity_type = rng.choice(vocab.ENTITY_TYPES)
        template = rng.choice(vocab.MNER_NEUTRAL)
        name = rng.choice(vocab.AMBIGUOUS_NAMES)
        cue = MNER_CUES[entity_type]
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
    tokens, spans = fill_template(template, slots)

    tags = ["O"] * len(tokens)
    for slot, span in spans.items():
        slot_type = types.get(slot)
        if slot_type is None:  # a user handle or an unused slot
            continue
        tags[span.start] = f"B-{slot_type}"
        for position in range(span.start + 1, span.end):
            tags[position] = f"I-{slot_type}"

    images, cue_index = image_plans(post_id, rng, cue)
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
    }
    record = Post(
        id=post_id, tokens=tokens, images=[plan.name for plan in images], url=synthetic_url(post_id), tags=tags
    )
    return SynthPost(record=record, images=images, meta=meta)


def plan_mner(posts: int, seed: int) -> list[SynthPost]:
    return [plan_mner_post(index, seed) for index in range(posts)]
