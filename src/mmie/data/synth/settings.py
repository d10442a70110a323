"""Which setting decides the label of a synthetic post, and in which shares a dataset mixes them.

Every post is decided by exactly one *setting* (docs/synthetic.md, "Settings that tell the
mechanisms apart"):

* ``text``       -- a telling template decides; no image carries a cue;
* ``cue``        -- the text leaves the label open; one large cue (55-85 % of the frame's side) in one image;
* ``small_cue``  -- the same with a small cue (5-15 % of the frame's area) anywhere in its image;
* ``distractor`` -- every image carries a cue, each of another label, on a background of its own
  named colour; the text names the colour of the image that decides;
* ``order``      -- two images carry cues of two labels; the later of the two decides.

The default mix (``cue`` 60 %, ``text`` 40 %) is the sample of before these settings existed and
gives byte-identical files; ``PRESETS["mechanisms"]`` mixes all five in equal shares.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from mmie.errors import ConfigError, DataError

SETTINGS = ("text", "cue", "small_cue", "distractor", "order")
# Share of posts whose text leaves the label open (an image decides) in the default mix.
AMBIGUOUS_SHARE = 0.6
# The image-decided settings in the order of their share intervals (see SynthMix.draw).
_IMAGE_SETTINGS = ("cue", "small_cue", "distractor", "order")


@dataclass(frozen=True)
class SynthMix:
    """Shares of the posts by deciding setting; ``cue`` takes what the others leave."""

    text: float = 1 - AMBIGUOUS_SHARE  # exactly 0.4, and 1 - 0.4 is exactly 0.6 again
    small_cue: float = 0.0
    distractor: float = 0.0
    order: float = 0.0

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name}: a share must be a number in [0, 1], got {value!r}")
        if self.cue < -1e-9:
            total = self.text + self.small_cue + self.distractor + self.order
            raise ConfigError(
                f"text + small_cue + distractor + order: the shares add up to {total:g} > 1 "
                "(the plain cue posts take what is left)"
            )

    @property
    def cue(self) -> float:
        # 1 - 0.4 - 0 - 0 - 0 is exactly 0.6: the default draws as the generator of before did.
        return 1.0 - self.text - self.small_cue - self.distractor - self.order

    @property
    def is_default(self) -> bool:
        return self == SynthMix()

    def shares(self) -> dict[str, float]:
        return {"text": self.text, "cue": max(0.0, self.cue), **{k: getattr(self, k) for k in _IMAGE_SETTINGS[1:]}}

    def draw(self, rng: random.Random) -> str:
        """The setting of one post, from ONE ``rng.random()``: ``[0, cue)`` is a plain cue post, then
        small_cue, distractor and order in turn, the rest ``text``. With the default mix this is
        exactly the ``rng.random() < 0.6`` ("ambiguous") draw of before."""
        u = rng.random()
        edge = 0.0
        for setting in _IMAGE_SETTINGS:
            share = self.cue if setting == "cue" else getattr(self, setting)
            edge += share
            if share > 0 and u < edge:
                return setting
        return "text"


PRESETS = {
    "default": SynthMix(),
    # Equal shares: every setting gets the same number of test posts for the breakdown.
    "mechanisms": SynthMix(text=0.2, small_cue=0.2, distractor=0.2, order=0.2),
}


def resolve_mix(preset: str = "default", **shares: float | None) -> SynthMix:
    """A preset's mix with the shares given (not None) put over it."""
    if preset not in PRESETS:
        raise ConfigError(f"preset: unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    values = asdict(PRESETS[preset])
    for name, value in shares.items():
        if name not in values:
            raise ConfigError(f"{name}: not a share of a mix (shares: {', '.join(values)})")
        if value is not None:
            values[name] = value
    return SynthMix(**values)


def deciding_setting(meta: dict) -> str:
    """The setting of one ``synth_meta.jsonl`` line. Lines of the default mix carry no ``setting``
    (their bytes are those of before): ambiguous posts are ``cue`` posts, the others ``text``."""
    setting = meta.get("setting")
    if setting is not None:
        return str(setting)
    return "cue" if meta.get("ambiguous") else "text"


def read_settings(path: str | Path, key: str = "setting") -> dict[str, str]:
    """Post id -> deciding setting, from a ``synth_meta.jsonl`` (or any JSON lines with ``id`` and
    ``key``). Raises DataError naming the file, line and field."""
    path = Path(path)
    if not path.is_file():
        raise DataError("no such file", path=path)
    groups: dict[str, str] = {}
    with open(path, encoding="utf-8") as stream:
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"not a JSON object: {error}", path=path, line=number) from None
            if not isinstance(record, dict):
                raise DataError("expected a JSON object", path=path, line=number)
            if "id" not in record:
                raise DataError("missing", path=path, line=number, field="id")
            if key == "setting":
                value = deciding_setting(record)
            elif key in record and record[key] is not None:
                value = str(record[key])
            else:
                raise DataError("missing", path=path, line=number, field=key)
            post_id = str(record["id"])
            if post_id in groups:
                raise DataError(f"post id {post_id!r} appears twice", path=path, line=number, field="id")
            groups[post_id] = value
    return groups


def mix_summary(mix: SynthMix) -> str:
    return ", ".join(
        f"{name} {100 * share:.0f} %" for name, share in mix.shares().items() if not math.isclose(share, 0)
    )
