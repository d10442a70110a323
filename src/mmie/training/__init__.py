"""Training on transformers' Trainer: configs, features, collate, the engine, saving and loading.

from mmie.training import train
result = train("configs/synthetic/bert_crf.yaml", output_dir="runs/demo",
               overrides=["data.train=demo_out/synth_mner/train.jsonl"])
"""

from __future__ import annotations

from typing import Any

__all__ = ["ExperimentConfig", "RunResult", "load_config", "train"]


def __getattr__(name: str) -> Any:
    # Lazy: `import mmie.training.config` must not pull in the Trainer.
    if name in ("train", "RunResult"):
        from mmie.training import engine

        return getattr(engine, name)
    if name in ("ExperimentConfig", "load_config"):
        from mmie.training import config

        return getattr(config, name)
    raise AttributeError(f"module 'mmie.training' has no attribute {name!r}")
