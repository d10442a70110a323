"""Scene graphs: the objects of each image and the relations between them, for MEGA and BERT+SG+Att.

Like the region (:mod:`mmie.regions`) and image-text (:mod:`mmie.imagetext`) providers, behind one
interface (``provider.graph(key) -> SceneGraph``):

* :class:`~mmie.scenegraph.precomputed.PrecomputedSceneGraphs` -- one JSON-lines file keyed by image
  name or record id (the format of ``docs/scenegraphs.md``);
* :class:`~mmie.scenegraph.base.NoSceneGraph` -- no file: it says plainly there is none. No
  scene-graph detector runs offline in mmie, and none is faked.

:mod:`mmie.scenegraph.align` matches a post's text graph with its scene graph by structure (MEGA's
structural alignment).
"""

from mmie.scenegraph.align import chain_heads, structural_alignment
from mmie.scenegraph.base import NoSceneGraph, SceneGraph, SceneGraphProvider, SceneGraphUnavailable, SceneObject
from mmie.scenegraph.precomputed import PrecomputedSceneGraphs, read_scene_graphs, write_scene_graphs

__all__ = [
    "NoSceneGraph",
    "PrecomputedSceneGraphs",
    "SceneGraph",
    "SceneGraphProvider",
    "SceneGraphUnavailable",
    "SceneObject",
    "chain_heads",
    "read_scene_graphs",
    "structural_alignment",
    "write_scene_graphs",
]
