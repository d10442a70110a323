"""Input processors: records -> per-example feature dicts -> padded batches.

``text`` (words and entity markers), ``images`` (the posts' images: cached features or pixels),
``regions`` (k regions per image from a region provider), ``focal`` (FocalMRE's framed copies),
``collate`` (dynamic padding), ``settings`` (what each of them reads from a config) and ``processor``
(tokenizer + featurizer + collator in one object, built by :func:`mmie.models.create_processor`).
They read config fields, never model classes.
"""
