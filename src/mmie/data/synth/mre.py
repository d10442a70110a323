"""Planning of synthetic MRE instances (MRE-MI layout).

An *ambiguous* instance puts a head and a tail of a fixed type pair in a neutral template ("{A} and
{B} last night"); the text shows the entity types and nothing else. The relation is drawn among the
relations of that pair (:data:`vocab.MRE_AMBIGUOUS_GROUPS`), independently of names and template,
and ONE image shows its cue (a heart for ``/per/per/couple``, a football for ``/per/per/peer``, a
house for ``/per/loc/place_of_residence`` ...). ``None`` has no cue: no image relates the pair.
A *telling* instance decides its relation in the text ("{A} married {B}") and its images carry no cue.

A non-default :class:`~mmie.data.synth.settings.SynthMix` adds the mechanism settings: the cue drawn
small (``small_cue``), every image with a cue of another relation on its own named colour and the
text naming the colour of the one that decides (``distractor``), or two cues where the later one
decides (``order``); see docs/synthetic.md.
"""

from __future__ import annotations

import random

from mmie.data.schema import NO_RELATION, Post, RelationInstance
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
)
from mmie.data.synth.images import ImagePlan
from mmie.data.synth.settings import SynthMix

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
_RELATION_OF_CUE = {cue: relation for relation, cue in MRE_CUES.items()}


def _head_tail_slots(pair: tuple[str, str]) -> tuple[str, str]:
    head_type, tail_type = pair
    return SLOT_OF_TYPE[head_type], "B" if tail_type == "PER" else SLOT_OF_TYPE[tail_type]


def _pair_template(template: str, pair: tuple[str, str]) -> str:
    head, tail = _head_tail_slots(pair)
    return template.replace("{H}", "{" + head + "}").replace("{T}", "{" + tail + "}")


def _group_cues(pair: tuple[str, str]) -> list[str]:
    """The cues of the relations a pair can have (None has none)."""
    return [MRE_CUES[relation] for relation in vocab.MRE_AMBIGUOUS_GROUPS[pair] if relation in MRE_CUES]


def _distractor_images(
    post_id: str, rng: random.Random, pair: tuple[str, str], relation: str
) -> tuple[list[ImagePlan], int, list[str]]:
    # The image that decides shows the relation's cue (None: no cue); every other image a cue of
    # another relation: first the cues of the pair's other relations (those a reader of the text
    # alone would consider), then cues of relations of other pairs; no cue twice.
    n_images = several_images(rng)
    relevant = rng.randrange(n_images)
    label_cue = MRE_CUES.get(relation)
    competitors = [cue for cue in _group_cues(pair) if cue != label_cue]
    rng.shuffle(competitors)
    rest = sorted(set(MRE_CUES.values()) - set(competitors) - {label_cue})
    rng.shuffle(rest)
    others = (competitors + rest)[: n_images - 1]
    rng.shuffle(others)
    images, colours = distractor_plans(post_id, rng, n_images, relevant, label_cue, others)
    return images, relevant, colours


def _order_images(post_id: str, rng: random.Random, pair: tuple[str, str]) -> tuple[list[ImagePlan], int, str]:
    # Two cues; the LATER one decides ("then and now"): its relation when the pair can have it, else None.
    # PER-PER: the heart and the football in either order; the other pairs: the pair's one cue and a
    # cue of a relation of another pair, in either order.
    own = _group_cues(pair)
    if len(own) >= 2:
        earlier, later = rng.sample(own, 2)
    else:
        other = rng.choice(sorted(set(MRE_CUES.values()) - set(own)))
        earlier, later = (other, own[0]) if rng.random() < 0.5 else (own[0], other)
    images, (_, later_index) = order_plans(post_id, rng, several_images(rng), earlier, later)
    relation = _RELATION_OF_CUE[later] if later in own else NO_RELATION
    return images, later_index, relation


def plan_mre_post(index: int, seed: int, mix: SynthMix | None = None) -> SynthPost:
    mix = mix or SynthMix()
    rng = post_rng("mre", seed, index)
    post_id = str(index + 1)
    setting = mix.draw(rng)
    ambiguous = setting != "text"
    if setting in ("cue", "small_cue"):
        pair = rng.choice(sorted(vocab.MRE_AMBIGUOUS_GROUPS))
        relation = rng.choice(vocab.MRE_AMBIGUOUS_GROUPS[pair])
        template = rng.choice(vocab.MRE_NEUTRAL[pair])
    elif setting == "distractor":
        pair = rng.choice(sorted(vocab.MRE_AMBIGUOUS_GROUPS))
        relation = rng.choice(vocab.MRE_AMBIGUOUS_GROUPS[pair])
        template = _pair_template(rng.choice(vocab.MRE_DISTRACTOR), pair)
    elif setting == "order":
        pair = rng.choice(sorted(vocab.MRE_AMBIGUOUS_GROUPS))
        relation = NO_RELATION  # replaced below: the order of the cues decides
        template = _pair_template(rng.choice(vocab.MRE_ORDER), pair)
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
    deciding: int | None = None
    cue_index: int | None
    if setting == "distractor":  # the text names the colour of the image that decides
        images, deciding, colours = _distractor_images(post_id, rng, pair, relation)
        slots["C"] = colours[deciding]
    tokens, spans = fill_template(template, slots)
    head_slot, tail_slot = _head_tail_slots(pair)

    if setting == "order":
        images, deciding, relation = _order_images(post_id, rng, pair)
        cue, cue_index = images[deciding].cue, deciding
    elif setting == "distractor":
        cue = MRE_CUES.get(relation)
        cue_index = deciding if cue is not None else None
    else:
        cue = MRE_CUES.get(relation) if ambiguous else None
        images, cue_index = image_plans(post_id, rng, cue, scale="small" if setting == "small_cue" else "large")
        deciding = cue_index
    meta = {
        "id": post_id,
        "ambiguous": ambiguous,
        "label": relation,
        "types": list(pair),
        "cue": cue,
        "cue_image": cue_index,
        "n_images": len(images),
        "template": template,
        **mechanism_meta(mix, setting, images, deciding),
    }
    post = Post(id=post_id, tokens=tokens, images=[plan.name for plan in images])
    record = RelationInstance(post=post, head=spans[head_slot], tail=spans[tail_slot], label=relation)
    return SynthPost(record=record, images=images, meta=meta)


def plan_mre(posts: int, seed: int, mix: SynthMix | None = None) -> list[SynthPost]:
    return [plan_mre_post(index, seed, mix) for index in range(posts)]
