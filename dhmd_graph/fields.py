"""Helpers of the typed configs: strict field types, and where two configs differ.

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
import types
import typing
from functools import cache
from typing import Any

__all__ = ["check_field_types", "first_difference", "matches"]


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
    """Raise a :class:`ValueError` naming the first field of the dataclass ``owner`` whose
    value does not have its annotated type."""
    cls = type(owner)
    hints = _hints(cls)
    for item in dataclasses.fields(owner):
        value = getattr(owner, item.name)
        if not matches(hints[item.name], value):
            expected = _describe(hints[item.name])
            raise ValueError(
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
