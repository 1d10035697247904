r"""Extractors by name, so that the command line (and a config) can name them.

A spec is ``NAME`` or ``NAME:ARGS``; ``ARGS`` are comma-separated, the first may be
positional (a folder, for the adapters) and the rest ``key=value`` (a tuple's items joined
by ``+``): ``face:fps=15``, ``acoustic:hop=0.02,n_mels=26``,
``openface:processed/,groups=au_r+pose``, ``opensmile:egemaps/``.

==============  =========================================================================
name            extractor
==============  =========================================================================
``acoustic``    :class:`~dhmd_graph.extract.AcousticFeatures` (librosa), the audio default
``face``        :class:`~dhmd_graph.extract.FaceFeatures` (OpenCV), the vision default
``openface``    :class:`~dhmd_graph.extract.OpenFaceCSV` on a folder of OpenFace 2 CSVs
``opensmile``   :class:`~dhmd_graph.extract.OpenSmileCSV` on a folder of openSMILE CSVs
==============  =========================================================================
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from pathlib import Path

from dhmd_graph.errors import ConfigError
from dhmd_graph.extract.adapters import OpenFaceCSV, OpenSmileCSV
from dhmd_graph.extract.audio import AcousticFeatures
from dhmd_graph.extract.face import FaceFeatures
from dhmd_graph.extract.protocol import Extractor

__all__ = ["EXTRACTORS", "make_extractor", "register_extractor"]

EXTRACTORS: dict[str, Callable[..., Extractor]] = {
    "acoustic": AcousticFeatures,
    "face": FaceFeatures,
    "openface": OpenFaceCSV,
    "opensmile": OpenSmileCSV,
}
"""Name → a callable (usually the class) that builds the extractor from the spec's
arguments."""


def register_extractor(name: str, factory: Callable[..., Extractor], *,
                       replace: bool = False) -> None:
    """Make ``factory`` (called with a spec's arguments) known as ``name``.

    Raises:
        ValueError: ``name`` is taken (and ``replace`` is not set) or holds ``:``.
    """
    if ":" in name or not name:
        raise ConfigError(f"register_extractor: a name without ':' (found {name!r})")
    if name in EXTRACTORS and not replace:
        raise ConfigError(f"register_extractor: '{name}' is already registered; pass "
                          "replace=True to replace it")
    EXTRACTORS[name] = factory


def make_extractor(spec: str | Extractor) -> Extractor:
    """The extractor a spec names (see the module's documentation); an extractor is
    returned as it is.

    Raises:
        ValueError: An unknown name, an unknown or malformed argument, or a result that is
            not an :class:`Extractor`.
    """
    if not isinstance(spec, str):
        extractor = spec
    else:
        name, _, text = spec.partition(":")
        if name not in EXTRACTORS:
            raise ConfigError(f"unknown extractor '{name}' in '{spec}'; known: "
                              f"{sorted(EXTRACTORS)} (register_extractor adds one)")
        factory = EXTRACTORS[name]
        args, kwargs = [], {}
        for i, item in enumerate(part for part in text.split(",") if part):
            key, equals, value = item.partition("=")
            if not equals and i == 0:
                args.append(_convert(factory, None, key, spec))
            elif not equals:
                raise ConfigError(f"extractor '{spec}': '{item}' is not key=value")
            else:
                kwargs[key.strip()] = _convert(factory, key.strip(), value, spec)
        try:
            extractor = factory(*args, **kwargs)
        except TypeError as error:
            raise ConfigError(f"extractor '{spec}': {error}") from None
    if not isinstance(extractor, Extractor):
        raise ConfigError(f"{extractor!r} is not an extractor: it needs a name, a dim and "
                          "__call__(segment)")
    return extractor


def _convert(factory: Callable, key: str | None, value: str, spec: str) -> object:
    """``value`` as the type of the dataclass field ``key`` (the first field if
    :obj:`None`); a string for a factory that is not a dataclass."""
    if not dataclasses.is_dataclass(factory):
        return value
    fields = [f for f in dataclasses.fields(factory) if f.init]
    chosen = fields[0] if key is None and fields else next(
        (f for f in fields if f.name == key), None)
    if chosen is None:
        raise ConfigError(f"extractor '{spec}': no option '{key}'; options: "
                          f"{[f.name for f in fields]}")
    kind = typing.get_type_hints(factory)[chosen.name]
    optional = typing.get_origin(kind) in (typing.Union, types.UnionType)
    if optional and value.lower() in ("none", "null") and type(None) in typing.get_args(kind):
        return None
    base = next(k for k in typing.get_args(kind) if k is not type(None)) if optional else kind
    try:
        if typing.get_origin(base) is tuple:
            return tuple(v for v in value.split("+") if v)
        if base is bool:
            return value.lower() in ("1", "true", "yes")
        return base(value) if base in (int, float, str, Path) else value
    except ValueError:
        raise ConfigError(f"extractor '{spec}': {chosen.name}={value!r} is not a "
                          f"{getattr(base, '__name__', base)}") from None
