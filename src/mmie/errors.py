"""Errors that tell the user where the problem is: file, line and field (or request and field)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError


class MmieError(Exception):
    """Base class of every error mmie raises on purpose (the CLI prints these without a trace)."""


class DataError(MmieError, ValueError):
    """A malformed record or file. ``str()`` reads ``file:line: field: message``."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field
        super().__init__(self._render())

    def _render(self) -> str:
        where = self.path or "<input>"
        if self.line is not None:
            where += f":{self.line}"
        if self.field:
            return f"{where}: {self.field}: {self.message}"
        return f"{where}: {self.message}"


class ConfigError(MmieError, ValueError):
    """An invalid experiment config: names the key (and the file when there is one)."""


def _describe(error: Mapping[str, Any]) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key"
    if error["type"] == "missing":
        return "required key is missing"
    return f"{error['msg']} (got {error.get('input')!r})"


def config_error(error: ValidationError, prefix: str = "", source: str | Path | None = None) -> ConfigError:
    """A ConfigError naming the key of the first problem (and how many more there are)."""
    problems = error.errors()
    first = problems[0]
    key = ".".join(str(part) for part in (prefix, *first["loc"]) if part != "")
    message = f"{key}: {_describe(first)}"
    if len(problems) > 1:
        message += f" (and {len(problems) - 1} more problem(s))"
    return ConfigError(f"{source}: {message}" if source else message)
