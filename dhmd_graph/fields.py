"""The one field engine of the typed configs: strict types, plain data in and out,
command-line overrides, and where two configs differ.

* :func:`to_dict` / :func:`from_dict` round-trip a dataclass (nested dataclasses and
  lists of them included) through plain JSON-able data; :func:`from_dict` refuses
  unknown keys and names a missing one.
* :func:`apply_overrides` applies dotted ``key=value`` strings (the ``--set`` of the
  command line) and returns the new object *and* the keys the user set, so no other
  module has to parse those strings again.
* :func:`first_difference` finds where two configs as plain data differ.

A configuration read from JSON or built in Python must hold the types its fields
declare: ``true`` is not an integer, ``"0.1"`` is not a number, ``"1111"`` is not a list
of seeds. :func:`check_field_types` checks every field of a dataclass instance and
raises a :class:`ValueError` naming ``Class.field``, the expected type and the value.

Accepted values per annotation: ``bool`` only ``True``/``False``; ``int`` an integer
that is not a bool; ``float`` an integer or float that is not a bool; ``str`` a string;
``list[T]`` a list whose items are ``T``; ``dict[K, V]`` a dict of such keys and values;
``X | None`` also :obj:`None`; a dataclass type an instance of it.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from functools import cache
from typing import Any

from dhmd_graph.errors import ConfigError

__all__ = ["apply_overrides", "check_field_types", "first_difference", "from_dict", "matches",
           "to_dict"]

TRUE = ("true", "1", "yes", "on")
FALSE = ("false", "0", "no", "off")
"""The words an override may use for a boolean (case-insensitive)."""


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def matches(hint: Any, value: Any) -> bool:
    """Whether ``value`` has the type ``hint`` under the rules of the module docstring."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(matches(option, value) for option in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(matches(item, v) for v in value)
    if origin is dict:
        key, item = typing.get_args(hint)
        return isinstance(value, dict) and all(
            matches(key, k) and matches(item, v) for k, v in value.items())
    if hint is Any:
        return True
    return isinstance(value, hint)


_PLURALS = {bool: "booleans", int: "integers", float: "numbers", str: "strings"}


def _describe(hint: Any) -> str:
    """``hint`` in words: ``list[int] | None`` is "a list of integers or null"."""
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(option) for option in arguments)
    if origin is list:
        return f"a list of {_plural(arguments[0])}"
    if origin is dict:
        return f"an object of {_plural(arguments[1])}"
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
             type(None): "null"}
    return names.get(hint, f"a {getattr(hint, '__name__', hint)}")


def _plural(hint: Any) -> str:
    return _PLURALS.get(hint, f"{getattr(hint, '__name__', hint)} objects")


def check_field_types(owner: object) -> None:
    """Raise a :class:`~dhmd_graph.errors.ConfigError` naming the first field of the dataclass ``owner`` whose
    value does not have its annotated type."""
    cls = type(owner)
    hints = _hints(cls)
    for item in dataclasses.fields(owner):
        value = getattr(owner, item.name)
        if not matches(hints[item.name], value):
            expected = _describe(hints[item.name])
            raise ConfigError(
                f"{cls.__name__}.{item.name}: expected {expected}, found {value!r} "
                f"({type(value).__name__}). Give {expected} (in JSON, numbers and booleans "
                "go without quotes)."
            )


def first_difference(old: object, new: object, key: str = "", *, shared_only: bool = False
                     ) -> tuple[str, object, object] | None:
    """The first ``(dotted key, old value, new value)`` where two configs as plain data
    differ (a missing key counts as :obj:`None`), or :obj:`None` if they agree.

    Args:
        old (object): Config data, e.g. a saved ``config.json``.
        new (object): Config data to compare with it.
        key (str, optional): The dotted key of ``old`` and ``new``. (default: ``""``)
        shared_only (bool, optional): Compare only the keys both dicts have (a saved
            config written before a setting existed still agrees). (default: :obj:`False`)
    """
    if isinstance(old, dict) and isinstance(new, dict):
        names = old.keys() & new.keys() if shared_only else old.keys() | new.keys()
        for name in sorted(names, key=str):
            found = first_difference(old.get(name), new.get(name),
                                     f"{key}.{name}" if key else str(name),
                                     shared_only=shared_only)
            if found:
                return found
        return None
    return None if old == new else (key, old, new)


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass instance as plain JSON-able data (dicts, lists, numbers, strings, None)."""
    return dataclasses.asdict(obj)


def from_dict(cls: type, data: Any, path: str = "") -> Any:
    """An instance of the dataclass ``cls`` from :func:`to_dict`-style data, validated.

    Nested dataclasses (and lists of them) are rebuilt from nested dicts; every other
    value is passed as it is, for the dataclass to check its type (no coercion: ``"8"``
    stays a string and is refused). Keys missing from ``data`` keep their defaults.

    Raises:
        ConfigError: ``data`` is not a mapping, has an unknown key (naming the valid
            ones), lacks a required key (naming it), or holds a value the dataclass
            refuses.
    """
    where = path or cls.__name__
    if not isinstance(data, dict):
        raise ConfigError(f"from_dict: {where} must be a mapping, found {type(data).__name__}.")
    hints = _hints(cls)
    unknown = sorted(set(data) - set(hints), key=str)
    if unknown:
        raise ConfigError(f"from_dict: unknown key(s) {unknown} in {where}; valid keys: "
                          f"{sorted(hints)}.")
    values = {key: _nested(hints[key], value, f"{path}.{key}" if path else key)
              for key, value in data.items()}
    missing = [item.name for item in dataclasses.fields(cls) if item.name not in values
               and item.default is dataclasses.MISSING
               and item.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"from_dict: {where} lacks the required key(s) {missing}.")
    return cls(**values)


def _nested(hint: Any, value: Any, path: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, path)
    if typing.get_origin(hint) is list and isinstance(value, list):
        (item,) = typing.get_args(hint)
        if dataclasses.is_dataclass(item):
            return [from_dict(item, v, f"{path}.{i}") for i, v in enumerate(value)]
    return value


def _parse(hint: Any, text: str, key: str, root: str) -> Any:
    """``text`` as a value of type ``hint``: ``true``/``false`` for booleans, ``none`` for
    optional fields, JSON for lists and dicts (any JSON value: the dataclass checks it)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if text.lower() in ("none", "null"):
            return None
        (hint,) = [option for option in typing.get_args(hint) if option is not type(None)]
    origin = typing.get_origin(hint)
    if hint is bool:
        if text.lower() in TRUE + FALSE:
            return text.lower() in TRUE
    elif hint in (int, float, str):
        try:
            return hint(text)
        except ValueError:
            pass
    elif origin in (list, dict):
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if isinstance(value, origin) or (origin is list and value is not None):
            return value
    else:
        raise ConfigError(f"{root}.{key}: cannot be set from text; set it in Python or in "
                          "a JSON config file instead.")
    expected = getattr(origin or hint, "__name__", str(hint))
    raise ConfigError(f"{root}.{key}: expected a value of type {expected}"
                      f"{' (as JSON)' if origin else ''}, found {text!r}.")


def _override(data: dict, cls: type, path: list[str], text: str, key: str, root: str) -> str:
    """Sets ``text`` at ``path`` in ``data`` (a dict of dataclass ``cls``), in place, and
    returns the canonical dotted key (list entries by name where they have one)."""
    head, rest = path[0], path[1:]
    hints = _hints(cls)
    if head not in hints:
        raise ConfigError(f"{root}: unknown key {key!r}: {cls.__name__} has no field "
                          f"{head!r}; valid keys: {sorted(hints)}.")
    hint = hints[head]
    if not rest:
        data[head] = _parse(hint, text, key, root)
        return head
    if dataclasses.is_dataclass(hint):
        return f"{head}.{_override(data[head], hint, rest, text, key, root)}"
    (item,) = typing.get_args(hint) if typing.get_origin(hint) is list else (None,)
    if not dataclasses.is_dataclass(item):
        raise ConfigError(f"{root}: {key!r}: {head!r} has no sub-keys.")
    entries = data[head]
    names = [entry.get("name", str(i)) for i, entry in enumerate(entries)]
    index = names.index(rest[0]) if rest[0] in names else (
        int(rest[0]) if rest[0].isdigit() and int(rest[0]) < len(entries) else None)
    if index is None:
        raise ConfigError(f"{root}: {key!r}: {rest[0]!r} is not an entry of {head!r}; use "
                          f"an index 0..{len(entries) - 1} or a name of {names}.")
    if len(rest) < 2:
        raise ConfigError(f"{root}: {key!r} names a whole entry; add a field, e.g. "
                          f"'{key}.kernel_size=3'.")
    inner = _override(entries[index], item, rest[1:], text, key, root)
    return f"{head}.{names[index]}.{inner}"


def apply_overrides(obj: Any, overrides: typing.Iterable[str]) -> tuple[Any, frozenset[str]]:
    r"""A copy of the dataclass ``obj`` with dotted ``key=value`` overrides applied, and
    the keys they set.

    Values are converted to the field's type (``true``/``false`` for booleans, ``none``
    for optional fields, JSON for dicts and lists). Entries of a list of dataclasses are
    addressed by name or index (``"modalities.audio.kernel_size=3"``). The result is
    validated once, after all overrides, so related fields can change together
    (``width=40 num_heads=8``).

    Args:
        obj: A dataclass instance (not modified).
        overrides (Iterable[str]): E.g. ``["width=40", "homogeneous_graph.temperature=4",
            'heterogeneous_graph.prior={"text->audio": 1}']``.

    Returns:
        tuple: The new instance, and the canonical dotted keys set (list entries by
        name, e.g. ``"modalities.text.vocab_size"`` for ``"modalities.0.vocab_size"``).

    Raises:
        ConfigError: Naming the bad key and the valid keys, or the expected type.
    """
    cls = type(obj)
    root = cls.__name__
    data = to_dict(obj)
    keys = set()
    for item in overrides:
        key, equals, text = item.partition("=")
        key = key.strip()
        if not equals or not key:
            raise ConfigError(f"{root}: expected 'key=value', found {item!r}.")
        keys.add(_override(data, cls, key.split("."), text.strip(), key, root))
    return from_dict(cls, data), frozenset(keys)
