"""Errors that tell the user where the problem is: file, line and field (or request and field)."""

from __future__ import annotations

from pathlib import Path


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
