"""Config files that compose: ``base: ../glra.yaml`` at the top of a YAML file names the file it extends.

    # configs/mnre/offline/glra.yaml
    base: ../glra.yaml                 # relative to this file
    name: mnre-glra-offline
    model: {encoder: minilm, vision_encoder: efficientnet-lite0}

The base is resolved first (its own ``base`` too), then the file's keys are merged over it: mappings
key by key, any other value (lists included) replaces. ``base`` is not in the result, and neither is
the base's ``name``: a run name belongs to one file (the default is the file's stem), so a variant never
shares a run folder with its base. A missing base, a base that is not a mapping and a cycle of bases are
:class:`mmie.errors.ConfigError` naming the file and ``base``.

This module imports nothing from the rest of mmie.training (config.py imports it).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from mmie.errors import ConfigError


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``5e-5`` as a float (YAML 1.2), not only ``5.0e-5`` (YAML 1.1):
    a learning rate written the way papers write it must not stay a string."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"),  # the exponent form without a dot; the rest is 1.1's
    list("-+0123456789"),
)


def load_yaml(text: str) -> Any:
    """A YAML document (``yaml.safe_load`` rules, plus ``5e-5`` read as a float)."""
    return yaml.load(text, Loader=_Loader)  # safe: _Loader builds only plain YAML types, as SafeLoader


def read_yaml_mapping(path: Path, kind: str, expected: str) -> dict:
    """The mapping a YAML ``kind`` file (config, sweep) holds; a ConfigError naming the file otherwise."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such {kind} file")
    try:
        settings = load_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if settings is None:
        raise ConfigError(f"{path}: the {kind} file is empty")
    if not isinstance(settings, dict):
        raise ConfigError(f"{path}: expected a mapping {expected}, got {type(settings).__name__}")
    return settings


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` merged onto ``base`` (a new dict): mappings key by key, anything else replaces."""
    result = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = deep_merge(result[key], value)
        else:
            result[key] = value
    return result


def compose_yaml(path: Path) -> dict[str, Any]:
    """The settings of the config file ``path`` with its ``base`` (and the bases' bases) merged under them."""
    return _compose(Path(path), ())


def _compose(path: Path, outer: tuple[Path, ...]) -> dict[str, Any]:
    """``compose_yaml`` of ``path``, reached through the files ``outer`` (for the cycle check)."""
    settings = read_yaml_mapping(path, "config", "of sections")
    if "base" not in settings:
        return settings
    written = settings.pop("base")
    if not isinstance(written, str) or not written.strip():
        raise ConfigError(f"{path}: base: expected the path of a config file, got {written!r}")
    base_path = Path(os.path.normpath(path.parent / written))
    chain = (*outer, path)
    if base_path.resolve() in {file.resolve() for file in chain}:
        files = " -> ".join(str(file) for file in (*chain, base_path))
        raise ConfigError(f"{path}: base: a cycle of bases: {files}")
    if not base_path.is_file():
        raise ConfigError(f"{path}: base: no such file {written}")
    try:
        base = _compose(base_path, chain)
    except ConfigError as error:
        raise ConfigError(f"{path}: base: {error}") from None
    base.pop("name", None)  # the run name is the variant's own (or its stem), never the base's
    return deep_merge(base, settings)
