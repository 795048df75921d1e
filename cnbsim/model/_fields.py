"""Typed access to a parsed TOML table, so that every model validates at the edge.

Each accessor raises a `ConfigError` (or the given error class) naming the file,
the dotted field and what value was expected.
"""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Any

from cnbsim.errors import CnbsimError, ConfigError


class Fields:
    """A view of one TOML table at `prefix` inside `file`."""

    def __init__(self, data: Any, file: Path | str, prefix: str = "",
                 error: type[CnbsimError] = ConfigError) -> None:
        self.file = file
        self.prefix = prefix
        self.error = error
        if not isinstance(data, dict):
            raise error(f"expected a table, got {_kind(data)}", file=file, field=prefix or None)
        self.data = data

    def _name(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def fail(self, key: str, message: str, hint: str | None = None) -> CnbsimError:
        return self.error(message, file=self.file, field=self._name(key), hint=hint)

    def has(self, key: str) -> bool:
        return key in self.data

    def str(self, key: str, *, required: bool = False, default: str = "", hint: str | None = None) -> str:
        if key not in self.data:
            if required:
                raise self.fail(key, "is required", hint or f"add {key} = \"...\"")
            return default
        value = self.data[key]
        if not isinstance(value, str):
            raise self.fail(key, f"must be a string, got {_kind(value)}", hint)
        if required and not value:
            raise self.fail(key, "must not be empty", hint)
        return value

    def bool(self, key: builtins.str, *, default: bool = False) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, f"must be true or false, got {_kind(value)}")
        return value

    def str_list(self, key: builtins.str) -> tuple[builtins.str, ...]:
        value = self.data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, builtins.str) for v in value):
            raise self.fail(key, f"must be an array of strings, got {_kind(value)}")
        return tuple(value)

    def table(self, key: builtins.str) -> dict[builtins.str, Any]:
        value = self.data.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a table, got {_kind(value)}")
        return value

    def sub(self, key: builtins.str) -> Fields:
        return Fields(self.table(key), self.file, self._name(key), self.error)

    def tables(self, key: builtins.str) -> list[Fields]:
        """An array of tables `[[key]]`, each as a `Fields` named `key[i]`."""
        value = self.data.get(key, [])
        if not isinstance(value, list):
            raise self.fail(key, f"must be an array of tables ([[{self._name(key)}]]), got {_kind(value)}")
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                raise self.error(f"must be a table, got {_kind(item)}", file=self.file,
                                 field=f"{self._name(key)}[{i}]")
            out.append(Fields(item, self.file, f"{self._name(key)}[{i}]", self.error))
        return out


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, (int, float)):
        return f"number {value}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__
