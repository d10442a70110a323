"""Planning of synthetic MRE instances (MRE-MI layout).

An *ambiguous* instance puts a head and a tail of a fixed type pair in a neutral template ("{A} and
{B} last night"); the text shows the entity types and nothing else. The relation is drawn among the
relations of that pair (:data:`vocab.MRE_AMBIGUOUS_GROUPS`), independently of names and template,
and ONE image shows its cue (a heart for ``/per/per/couple``, a football for ``/per/per/peer``, a
house for ``/per/loc/place_of_residence`` ...). ``None`` has no cue: no image relates the pair.
A *telling* instance decides its relation in the text ("{A} married {B}") and its images carry no cue.
"""

from __future__ import annotations

from mmie.data.schema import NO_RELATION, Post, RelationInstance
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
)

MRE_CUES = {
    "/per/per/couple": "heart",
    "/per/per/peer": "ball",
    "/per/org/member_of": "logo",
    "/per/loc/place_of_residence": "house",
    "/org/loc/locate_at": "pin",
    "/per/misc/present_in": "stage",
}
# Labels the synthetic MRE data uses, in the MNRE id order (a subset of MNRE / MRE-MI labels).
MRE_LABELS = (
    NO_RELATION,
    "/per/per/couple",
    "/per/per/peer",
    "/per/org/member_of",
    "/per/loc/place_of_residence",
    "/org/loc/locate_at",
    "/per/misc/present_in",
)
TELLING_NONE_SHARE = 0.35


def _head_tail_slots(pair: tuple[str, str]) -> tuple[str, str]:
    head_type, tail_type = pair
    return SLOT_OF_TYPE[head_type], "B" if tail_type == "PER" else SLOT_OF_TYPE[tail_type]


def plan_mre_post(index: int, seed: int) -> SynthPost:
    rng = post_rng("mre", seed, index)
    post_id = str(index + 1)
    ambiguous = rng.random() < AMBIGUOUS_SHARE
    if ambiguous:
        pair = rng.choice(sorted(vocab.MRE_AMBIGUOUS_GROUPS))
        relation = rng.choice(vocab.MRE_AMBIGUOUS_GROUPS[pair])
        template = rng.choice(vocab.MRE_NEUTRAL[pair])
    elif rng.random() < TELLING_NONE_SHARE:
        pair = rng.choice(sorted(vocab.MRE_TELLING_NONE))
        relation = NO_RELATION
        template = rng.choice(vocab.MRE_TELLING_NONE[pair])
    else:
        relation = rng.choice(sorted(vocab.MRE_TELLING))
        head_type, tail_type, templates = vocab.MRE_TELLING[relation]
        pair = (head_type, tail_type)
        template = rng.choice(templates)

    head_name = person_name(rng)
    tail_name = person_name(rng)
    while tail_name == head_name:
        tail_name = person_name(rng)
    slots = {
        "A": head_name,
        "B": tail_name,
        "O": name_of_type("ORG", rng),
        "L": name_of_type("LOC", rng),
        "M": name_of_type("MISC", rng),
        "U": rng.choice(vocab.HANDLES),
    }
    tokens, spans = fill_template(template, slots)
    head_slot, tail_slot = _head_tail_slots(pair)

    cue = MRE_CUES.get(relation) if ambiguous else None
    images, cue_index = image_plans(post_id, rng, cue)
    meta = {
        "id": post_id,
        "ambiguous": ambiguous,
        "label": relation,
        "types": list(pair),
        "cue": cue,
        "cue_image": cue_index,
        "n_images": len(images),
        "template": template,
    }
    post = Post(id=post_id, tokens=tokens, images=[plan.name for plan in images])
    record = RelationInstance(post=post, head=spans[head_slot], tail=spans[tail_slot], label=relation)
    return SynthPost(record=record, images=images, meta=meta)


def plan_mre(posts: int, seed: int) -> list[SynthPost]:
    return [plan_mre_post(index, seed) for index in range(posts)]
