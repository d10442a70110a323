"""Image-derived text: captions, object tags and OCR text of each image, for the systems that read them.

OCSGA reads object tags, ITA tags, a caption and OCR text, VisualPT-MoE tags and a caption. Like the
region providers (:mod:`mmie.regions`), three providers sit behind one interface:

* :class:`~mmie.imagetext.precomputed.PrecomputedImageText` -- one JSON-lines file keyed by image
  name (the format of ``docs/imagetext.md``);
* :class:`~mmie.imagetext.hub.HubImageText` -- a named Hugging Face pipeline model (object
  detection or image classification for tags, image-text-to-text for captions or OCR), run once per
  image and cached in that same file format;
* :class:`~mmie.imagetext.base.NoImageText` -- offline with neither: it says plainly that it has no
  text for the image instead of inventing some.
"""

from mmie.imagetext.base import IMAGE_TEXT_FIELDS, ImageText, ImageTextProvider, ImageTextUnavailable, NoImageText
from mmie.imagetext.hub import HubImageText
from mmie.imagetext.precomputed import PrecomputedImageText, read_image_text, write_image_text

__all__ = [
    "IMAGE_TEXT_FIELDS",
    "HubImageText",
    "ImageText",
    "ImageTextProvider",
    "ImageTextUnavailable",
    "NoImageText",
    "PrecomputedImageText",
    "read_image_text",
    "write_image_text",
]
