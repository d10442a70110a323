"""Structural alignment of a post's text graph with its image's scene graph (MEGA's graph structural alignment).

MEGA matches the dependency graph of the text with the scene graph of the image by structure
alone: two nodes are alike when their neighbourhoods look alike, whatever they are. The authors'
``StructuralAlign/`` runs REGAL (Heimann et al., 2018) on the union of the two graphs: xNetMF's
structural identity of each node u,

    d_u = sum_{k=1..K} delta^(k-1) d_u^k                                                        (S1)

where d_u^k counts u's k-hop neighbours by logarithmically binned degree (bin floor(log2 degree)),
then the similarity of two nodes

    s(u, v) = exp(-gamma_s || d_u - d_v ||^2)                                                   (S2)

which REGAL factorizes into low-rank node embeddings (a Nystrom approximation with landmarks) and
keeps, for each node, its ``top`` most similar nodes of the other graph (a k-d tree, 5 in their run).
Here (S2) is computed exactly (the graphs of a post have tens of nodes, so the factorization's
saving buys nothing) and its ``top`` largest entries per object are kept (S3): an object x word map.
(S1)-(S3) are this file's numbers (the MEGA paper's equations for REGAL are not in shared/papers).

The text graph is the post's dependency parse when the scene-graph file carries it
(``text_heads``). mmie installs no parser (the spaCy and Stanza models are downloads, not
packages of the registry), so without it the text graph is **an approximation**: a chain linking
each word to the next (:func:`chain_heads`), which gives every inner word degree 2 and the two end
words degree 1. It is named as such in docs/models/mega.md; it is not MEGA's dependency graph.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

DEFAULT_LAYERS = 2  # K: REGAL's "untillayer" in the authors' run
DEFAULT_DISCOUNT = 0.01  # delta: REGAL's "alpha"
DEFAULT_TOP = 5  # REGAL's "numtop"


def chain_heads(words: int) -> list[int]:
    """The approximation of a parse when none is given: word i hangs on word i + 1 (the last is the root)."""
    return [index + 1 for index in range(words - 1)] + [-1] if words else []


def adjacency(nodes: int, edges: Sequence[tuple[int, int]]) -> list[set[int]]:
    """Undirected neighbour sets (self-loops dropped)."""
    neighbours: list[set[int]] = [set() for _ in range(nodes)]
    for a, b in edges:
        if a != b:
            neighbours[a].add(b)
            neighbours[b].add(a)
    return neighbours


def structural_identity(neighbours: list[set[int]], layers: int, discount: float, buckets: int) -> np.ndarray:
    """``[nodes, buckets]``: d_u of (S1) for every node of one graph."""
    degrees = [len(n) for n in neighbours]
    identity = np.zeros((len(neighbours), buckets))
    for node in range(len(neighbours)):
        seen, frontier = {node}, {node}
        for layer in range(layers):
            frontier = {n for f in frontier for n in neighbours[f]} - seen
            seen |= frontier
            for other in frontier:
                identity[node, int(math.log2(degrees[other])) if degrees[other] else 0] += discount**layer
    return identity


def structural_alignment(
    objects: int,
    object_edges: Sequence[tuple[int, int]],
    text_heads: Sequence[int],
    *,
    layers: int = DEFAULT_LAYERS,
    discount: float = DEFAULT_DISCOUNT,
    top: int = DEFAULT_TOP,
) -> np.ndarray:
    """``[objects, words]``: the structural similarity (S2) of each object to each word, its ``top``
    largest per object kept and the rest zero (S3)."""
    words = len(text_heads)
    alignment = np.zeros((objects, words))
    if not objects or not words:
        return alignment
    scene = adjacency(objects, object_edges)
    text = adjacency(words, [(word, head) for word, head in enumerate(text_heads) if head >= 0])
    buckets = int(math.log2(max(1, *(len(n) for n in scene + text)))) + 1
    d_scene = structural_identity(scene, layers, discount, buckets)
    d_text = structural_identity(text, layers, discount, buckets)
    distance = ((d_scene[:, None, :] - d_text[None, :, :]) ** 2).sum(-1)  # [objects, words]
    similarity = np.exp(-distance)  # (S2), gamma_s = 1 as in the authors' run
    if top < words:  # (S3)
        cut = np.argsort(-similarity, axis=1, kind="stable")[:, top:]
        np.put_along_axis(similarity, cut, 0.0, axis=1)
    alignment[:] = similarity
    return alignment
