"""Typed loading of plain YAML data into frozen dataclasses, with errors that locate.

``build(cls, data, source)`` walks ``cls``'s fields and type hints, rejects unknown keys
(naming the closest allowed one), checks types, and turns a validation error raised in
``__post_init__`` into a ``ConfigError`` that names the file and the key path.
``to_plain`` is the inverse, for writing a resolved config back out as YAML.
"""
from __future__ import annotations

import dataclasses
import re
import types
import typing
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from search_space.errors import ConfigError, HynasError, did_you_mean

T = TypeVar("T")

# PyYAML reads YAML 1.1, where a float needs a dot: `weight_decay: 5e-4` arrives as the string '5e-4'. A number
# field takes such strings as the YAML 1.2 core schema (and every user) reads them.
_FLOAT_TEXT = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?")


def build(cls: type[T], data: Any, source: str, path: str = "") -> T:
    """Build dataclass ``cls`` from ``data`` (a mapping); ``source`` names the file."""
    return _convert(cls, data, source, path)  # type: ignore[return-value]


def to_plain(obj: Any) -> Any:
    """Dataclasses and tuples to dicts and lists, ready for ``yaml.safe_dump``."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (tuple, list)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    return obj


def _where(source: str, path: str) -> str:
    """``file: key.path``; the file alone at the top level (the message that follows names the key)."""
    return f"{source}: {path}" if path else source


PLURALS = {"a number": "numbers", "an integer": "integers", "a string": "strings"}


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (tuple, list):
        return f"a list of {_describe(get_args(tp)[0])}"
    if origin is dict:
        value = _describe(get_args(tp)[1])
        return f"a mapping of names to {PLURALS.get(value, value)}"
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(tp))
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false", type(None): "null"}.get(
        tp, str(tp)
    )


def _convert(tp: Any, value: Any, source: str, path: str) -> Any:
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build_dataclass(tp, value, source, path)
    if origin in (Union, types.UnionType):
        for option in get_args(tp):
            try:
                return _convert(option, value, source, path)
            except ConfigError:
                continue
        raise ConfigError(f"{_where(source, path)}: got {value!r}, expected {_describe(tp)}")
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise ConfigError(
            f"{_where(source, path)}: {value!r} is not allowed{did_you_mean(str(value), map(str, get_args(tp)))}; "
            f"expected {_describe(tp)}"
        )
    if origin in (tuple, list):
        item_type = get_args(tp)[0]
        items = value if isinstance(value, (list, tuple)) else [value]  # a scalar pins a choice to one value
        return tuple(_convert(item_type, v, source, f"{path}[{i}]") for i, v in enumerate(items))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{_where(source, path)}: got {value!r}, expected {_describe(tp)}")
        key_type, item_type = get_args(tp)
        return {_convert(key_type, k, source, path): _convert(item_type, v, source, f"{path}.{k}")
                for k, v in value.items()}
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
        return float(value)
    if tp is type(None) and value is None:
        return None
    if tp in (int, str, bool) and type(value) is tp:
        return value
    if tp is typing.Any:
        return value
    raise ConfigError(f"{_where(source, path)}: got {value!r}, expected {_describe(tp)}")


def _build_dataclass(cls: Any, value: Any, source: str, path: str) -> Any:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ConfigError(f"{_where(source, path)}: got {value!r}, expected a mapping")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and not f.metadata.get("internal")}
    hints = get_type_hints(cls)
    kwargs = {}
    for key, item in value.items():
        sub = f"{path}.{key}" if path else str(key)
        if key not in fields:
            raise ConfigError(
                f"{_where(source, sub)}: unknown key{did_you_mean(str(key), fields)}; "
                f"allowed keys: {', '.join(fields)}"
            )
        kwargs[key] = _convert(hints[key], item, source, sub)
    for name, f in fields.items():
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{_where(source, f'{path}.{name}' if path else name)}: required key is missing")
    try:
        return cls(**kwargs)
    except HynasError as err:
        raise ConfigError(f"{_where(source, path)}: {err}") from None
