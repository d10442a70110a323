"""Converters of released image-text files to mmie's format (:mod:`mmie.imagetext.precomputed`).

VisualPT-MoE (xubodhu/VisualPT-MoE, ``utils/save_caption.py`` and ``utils/save_object_tags.py``)
releases two ``torch.save`` dictionaries keyed by image file name: captions (``caption_mre.pt``:
name -> one string, ViT-GPT2 captions) and object tags (``object_tags_mre.pt``: name -> a list of
COCO labels of Faster R-CNN boxes scoring at least 0.5, repeats kept). They are read with
``weights_only=True`` (no code runs). The authors' script writes the caption "There are nothing in
the image" for an image it could not open: that is no caption of the image, so it is dropped and
counted, never passed on as text.

ITA (Alibaba-NLP/KB-NER, ``ITA/``) releases its preprocessed datasets (VinVL captions and object
labels with attributes, Tesseract OCR) as "doc" column files, read by the authors' trainer next to
the plain dataset file, post by post (``finetune_trainer.py`` pairs sentence ``i`` of one with
sentence ``i`` of the other): each post is its words with their tags, then the token ``<EOS>`` (the
encoder's separator) and the image text, every token of which is tagged ``X`` (the tagger masks
``X`` out of its CRF, ``sequence_tagger_model.py``). :func:`convert_ita` reads such a file beside
the matching dataset file (which names each post's image), checks that the words agree, and writes
the image text per image. The image text is split into fields at each further ``<EOS>``, in the
order ``order`` (default caption, tags, OCR: the order of the authors' config names,
``captionobj_classattr_vinvl_ocr``); the tag field is split into words.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mmie.data import read_dataset
from mmie.errors import DataError
from mmie.imagetext.base import IMAGE_TEXT_FIELDS, ImageText
from mmie.imagetext.precomputed import write_image_text

VISUALPT_NO_CAPTION = "There are nothing in the image"
ITA_SEPARATOR = "<EOS>"  # between the post and its image text, and between image-text fields
ITA_IMAGE_TEXT_TAG = "X"  # the tag of every image-text token


@dataclass
class ConversionReport:
    images: int
    captions: int
    tag_lists: int
    placeholder_captions: int  # the authors' stand-in for an unreadable image, dropped


def _torch_dict(path: Path, what: str) -> dict:
    import torch  # only the released .pt files need it

    if not path.is_file():
        raise DataError(f"no such {what} file", path=path)
    try:
        mapping = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch/pickle raise many types for files that are not what they claim
        reason = str(error).splitlines()[0][:200] if str(error) else ""
        raise DataError(f"not a torch-saved {what} dictionary ({type(error).__name__}: {reason})", path=path) from None
    if not isinstance(mapping, dict):
        raise DataError(f"expected a dictionary keyed by image name, got {type(mapping).__name__}", path=path)
    return mapping


def convert_visualpt_moe(
    out: str | Path, *, captions: str | Path | None = None, tags: str | Path | None = None
) -> ConversionReport:
    """Write VisualPT-MoE's caption and/or tag dictionaries as one image-text file."""
    if captions is None and tags is None:
        raise DataError("give the caption dictionary, the tag dictionary, or both", field="captions")
    entries: dict[str, ImageText] = {}
    report = ConversionReport(0, 0, 0, 0)
    if captions is not None:
        for name, caption in _torch_dict(Path(captions), "caption").items():
            if not isinstance(caption, str):
                raise DataError(f"caption of {name!r} is not a string", path=captions, field=str(name))
            if caption.strip() == VISUALPT_NO_CAPTION:
                report.placeholder_captions += 1
                continue
            entries.setdefault(str(name), ImageText(str(name))).caption = caption
            report.captions += 1
    if tags is not None:
        for name, labels in _torch_dict(Path(tags), "object-tag").items():
            if not (isinstance(labels, (list, tuple)) and all(isinstance(label, str) for label in labels)):
                raise DataError(f"tags of {name!r} are not a list of strings", path=tags, field=str(name))
            entries.setdefault(str(name), ImageText(str(name))).tags = list(labels)
            report.tag_lists += 1
    report.images = len(entries)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    write_image_text(sorted(entries.values(), key=lambda entry: entry.image), out)
    return report


@dataclass
class ItaConversionReport:
    posts: int
    images: int
    without_image_text: int  # posts whose block has no <EOS> (no image text: nothing written for them)


def _column_blocks(path: Path) -> list[list[tuple[int, str, str]]]:
    """The blank-line separated blocks of a column file as ``(line, token, tag)`` (IMGID and DOCSTART lines kept)."""
    if not path.is_file():
        raise DataError("no such ITA file", path=path)
    blocks: list[list[tuple[int, str, str]]] = [[]]
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        columns = line.split()
        if not columns:
            if blocks[-1]:
                blocks.append([])
            continue
        if columns[0].startswith("-DOCSTART-"):
            continue
        blocks[-1].append((number, columns[0], columns[-1] if len(columns) > 1 else ""))
    return [block for block in blocks if block]


def _ita_fields(tokens: list[tuple[int, str, str]], order: tuple[str, ...], path: Path) -> dict[str, list[str]]:
    """The image-text tokens after the first <EOS>, split at each further <EOS> into ``order``'s fields."""
    segments: list[list[str]] = [[]]
    for number, token, tag in tokens:
        if token == ITA_SEPARATOR:
            segments.append([])
            continue
        if tag != ITA_IMAGE_TEXT_TAG:
            raise DataError(
                f"image-text token {token!r} is tagged {tag!r}, not {ITA_IMAGE_TEXT_TAG}", path=path, line=number
            )
        segments[-1].append(token)
    if len(segments) > len(order):
        raise DataError(
            f"{len(segments)} image-text parts separated by {ITA_SEPARATOR}, but only {len(order)} fields "
            f"given ({', '.join(order)})",
            path=path,
            line=tokens[0][0],
            field="order",
        )
    return dict(zip(order, segments))


def convert_ita(
    ita_file: str | Path,
    dataset_file: str | Path,
    out: str | Path,
    *,
    order: tuple[str, ...] = IMAGE_TEXT_FIELDS,
    data_format: str | None = None,
) -> ItaConversionReport:
    """Write the image text of ITA's "doc" column file ``ita_file`` per image, the images named by
    ``dataset_file``: the same posts in the same order (mmie reads it in any of its formats)."""
    if not order or len(set(order)) != len(order) or set(order) - set(IMAGE_TEXT_FIELDS):
        raise DataError(
            f"order: distinct fields among {', '.join(IMAGE_TEXT_FIELDS)}, got {list(order)}", field="order"
        )
    ita_path = Path(ita_file)
    blocks = _column_blocks(ita_path)
    posts = read_dataset(dataset_file, data_format).records
    if len(blocks) != len(posts):
        raise DataError(f"{len(blocks)} posts, but {dataset_file} has {len(posts)}: not the same split", path=ita_path)
    entries: dict[str, ImageText] = {}
    report = ItaConversionReport(len(posts), 0, 0)
    for block, post in zip(blocks, posts):
        if block[0][1].startswith("IMGID:"):
            block = block[1:]
        words = [token for _, token, _ in block]
        cut = words.index(ITA_SEPARATOR) if ITA_SEPARATOR in words else len(words)
        if words[:cut] != list(post.tokens):
            raise DataError(
                f"the words differ from post {post.id!r} of {dataset_file}: not the same split or order",
                path=ita_path,
                line=block[0][0],
            )
        if cut == len(words):
            report.without_image_text += 1
            continue
        if not post.images:
            raise DataError(f"post {post.id!r} of {dataset_file} names no image", path=ita_path, line=block[0][0])
        fields = _ita_fields(block[cut + 1 :], order, ita_path)
        entry = ImageText(post.images[0])
        for name, tokens in fields.items():
            if name == "tags":
                entry.tags = tokens
            else:
                setattr(entry, name, " ".join(tokens))
        entries[entry.image] = entry
    report.images = len(entries)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    write_image_text(sorted(entries.values(), key=lambda entry: entry.image), out)
    return report
