"""A small named registry, one instance per kind of pluggable part.

Modeled on timm's registry: a decorator registers a factory by name, callers look
names up and list them. Duplicates raise instead of silently overwriting.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

from search_space.errors import ConfigError, did_you_mean

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories of one kind (blocks, evaluators, strategies, ...)."""

    def __init__(self, kind: str, imported_on_use: Mapping[str, str] | None = None) -> None:
        """``imported_on_use``: names whose module (the value) registers them when imported, imported by ``get``
        only: modules with heavy dependencies (the Ray runner imports ray). They are known, listed and checked
        by name before that."""
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._imported_on_use = dict(imported_on_use or {})

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name``; a second use of a name raises."""

        def add(obj: T) -> T:
            if name in self._entries:
                raise ConfigError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = obj
            return obj

        return add

    def check(self, name: str) -> None:
        """An unknown name raises listing the choices; nothing is imported."""
        if name not in self:
            raise ConfigError(f"unknown {self.kind} {name!r}{did_you_mean(name, self.names())}; "
                              f"choose one of: {', '.join(self.names())}")

    def get(self, name: str) -> T:
        """Return the entry named ``name``; an unknown name raises listing the choices."""
        self.check(name)
        if name not in self._entries:
            importlib.import_module(self._imported_on_use[name])
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted({*self._entries, *self._imported_on_use})

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._imported_on_use

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
