"""The run folder: its config, its log file, its checkpoints (and which one a resume can trust)."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from mmie.errors import ConfigError
from mmie.io import write_atomic
from mmie.training.config import ExperimentConfig

logger = logging.getLogger("mmie.training")

CHECKPOINTS = "checkpoints"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def _config_differences(saved: Any, current: Any, prefix: str = "") -> list[str]:
    if isinstance(saved, dict) and isinstance(current, dict):
        keys = sorted(set(saved) | set(current))
        return [d for key in keys for d in _config_differences(saved.get(key), current.get(key), f"{prefix}{key}.")]
    return [] if saved == current else [prefix.rstrip(".")]


def prepare_run_dir(run_dir: Path, config: ExperimentConfig, resume: bool, overwrite: bool) -> None:
    saved = run_dir / "config.yaml"
    if resume:
        if not saved.is_file():
            raise ConfigError(f"--resume: {run_dir} holds no run to resume (no config.yaml)")
        differences = _config_differences(yaml.safe_load(saved.read_text()), config.model_dump(mode="json"))
        if differences:
            raise ConfigError(
                f"--resume: the config differs from the one of {run_dir} at {', '.join(differences)}; "
                "resume with the same config, or start a new run folder"
            )
        return
    if run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite:
            raise ConfigError(
                f"{run_dir}: the run folder is not empty; pass --resume to continue its run, "
                "--overwrite to start it again, or choose another --output-dir"
            )
        if not saved.is_file():
            raise ConfigError(f"{run_dir}: not a run folder (no config.yaml): not overwriting it")
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(saved, config.to_yaml())


def last_complete_checkpoint(checkpoints: Path) -> Path | None:
    """The newest checkpoint whose save finished; incomplete newer ones are deleted."""
    if not checkpoints.is_dir():
        return None
    found = sorted(
        (int(match.group(1)), path)
        for path in checkpoints.iterdir()
        if path.is_dir() and (match := _CHECKPOINT.match(path.name))
    )
    for _step, path in reversed(found):
        # trainer_state.json is the last file _save_checkpoint writes.
        if (path / "trainer_state.json").is_file() and (path / "model.safetensors").is_file():
            return path
        logger.warning("removing the incomplete checkpoint %s (interrupted while saving)", path)
        shutil.rmtree(path)
    return None


def add_log_file(path: Path) -> logging.Handler:
    import transformers

    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    mmie_logger = logging.getLogger("mmie")
    mmie_logger.addHandler(handler)
    if mmie_logger.level == logging.NOTSET or mmie_logger.level > logging.INFO:
        mmie_logger.setLevel(logging.INFO)
    transformers.utils.logging.add_handler(handler)
    return handler


def remove_log_file(handler: logging.Handler) -> None:
    import transformers

    logging.getLogger("mmie").removeHandler(handler)
    transformers.utils.logging.remove_handler(handler)
    handler.close()
