"""Running trained models: model folders (``saving``, ``loading``), predictions over records
(``predict``) and the challenge-set sweeps (``challenges``)."""
