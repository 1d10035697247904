r"""The labels of a plain-arrays folder: which kind they are, and how they are read.

A folder (:mod:`dhmd_graph.data.arrays`) holds one of three kinds of label, or none:

==============  =========================================================================
kind            in the folder
==============  =========================================================================
``score``       a ``label`` column of numbers (e.g. a sentiment score, ``-1.4``)
``class``       a ``label`` column of class indices ``0 .. C-1``, or of class names with
                the ``classes`` listed in ``dataset.json``
``multi_hot``   one ``label_<name>`` column of 0/1 per label, or ``labels.npy``, an
                ``(N, C)`` array of 0/1 (row i for row i of ``labels.csv``)
unlabelled      none of these: the samples can be described and predicted on, not trained on
==============  =========================================================================

``dataset.json`` (optional) declares the kind, so that nothing is guessed::

    {"label_kind": "class", "classes": ["happy", "sad", "neutral", "angry",
                                        "excited", "frustrated"]}

Its keys: ``label_kind`` (``"score"``, ``"class"`` or ``"multi_hot"``), ``classes`` (the
class names in index order, or the multi-hot label names in column order) and
``num_classes`` (:math:`C`, for class indices when no names are given; a split may lack
the last classes). Any other key, or a value of another type, is an error.

**Without a declaration the kind is inferred only where the cells leave no doubt:** a
``label`` column with a number that is not a whole number written as one (``0.5``,
``1.0``, ``-2e-1``) holds scores; ``label_<name>`` columns or ``labels.npy`` hold
multi-hot labels; a ``label`` column of names (with ``classes``) or a ``classes`` /
``num_classes`` declaration means classes. A column of whole numbers only (``0``, ``3``,
``-1``) could be class indices or integer scores, so it is refused until ``dataset.json``
says which. With ``classes`` listed, a cell that is one of the names is read as that
name (so classes named ``"1"``, ``"2"`` are names, not indices).

Every cell is checked as it is read; a problem is a :class:`DatasetError` naming
``labels.csv`` (or ``labels.npy``, ``dataset.json``), the column and line, what was
expected and found, and the fix.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dhmd_graph.data.labels import LABEL_KINDS
from dhmd_graph.data.npy import open_npy
from dhmd_graph.errors import DatasetError
from dhmd_graph.files import Key, check_object, read_user_json

__all__ = ["DESCRIPTION_FILE", "LABELS_ARRAY", "LABELS_FILE", "LABEL_COLUMN", "LABEL_PREFIX",
           "FolderLabels", "LabelDeclaration", "number_column", "read_declaration",
           "read_folder_labels"]

DESCRIPTION_FILE = "dataset.json"
LABELS_FILE = "labels.csv"
LABELS_ARRAY = "labels.npy"
LABEL_COLUMN = "label"
LABEL_PREFIX = "label_"

_DECLARATION_KEYS = {
    "label_kind": Key(str, f"one of {list(LABEL_KINDS)}"),
    "classes": Key(list, "a list of names, one per class or label, in index order"),
    "num_classes": Key(int, "the number of classes, an integer >= 2"),
}
_WHOLE = re.compile(r"[+-]?\d+")  # a whole number written as one
_MAX_CLASSES = 1 << 16
_FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class LabelDeclaration:
    """What ``dataset.json`` declares of the labels (every field optional)."""

    label_kind: str | None = None
    classes: tuple[str, ...] | None = None
    num_classes: int | None = None


@dataclass(frozen=True)
class FolderLabels:
    r"""The labels of every row of ``labels.csv``.

    Attributes:
        values (np.ndarray or None): ``(N,)`` float scores, ``(N,)`` int64 class indices,
            ``(N, C)`` float32 multi-hot rows, or :obj:`None` (unlabelled).
        kind (str or None): ``'score'``, ``'class'``, ``'multi_hot'`` or :obj:`None`.
        num_classes (int or None): :math:`C` for classes and multi-hot labels.
        names (tuple[str, ...] or None): The class or label names, if known.
        declared (bool): Whether ``dataset.json`` declared the kind (else it was inferred).
        field (str): Where the labels are, for messages (``'label'``, ``'labels.npy'``...).
    """

    values: np.ndarray | None
    kind: str | None
    num_classes: int | None = None
    names: tuple[str, ...] | None = None
    declared: bool = False
    field: str = LABEL_COLUMN


def read_declaration(folder: Path) -> LabelDeclaration:
    """``dataset.json`` of ``folder``, checked (an empty declaration when there is none).

    Raises:
        DatasetError: Not a JSON object of the keys in the module's documentation, a key
            of another type, an unknown kind, repeated or empty class names, or a
            ``num_classes`` that disagrees with ``classes``.
    """
    path = folder / DESCRIPTION_FILE
    if not (path.exists() or path.is_symlink()):
        return LabelDeclaration()
    fix = ('Write e.g. {"label_kind": "class", "classes": ["negative", "positive"]}; see '
           "dhmd_graph.data.folder_labels")
    data = check_object(read_user_json(path, root=folder, max_bytes=1 << 20, max_depth=3,
                                       what="a JSON object describing the labels"),
                        _DECLARATION_KEYS, path, fix=fix)

    def fail(field: str, expected: str, found: str) -> DatasetError:
        return DatasetError("malformed dataset description", file=path, field=field,
                            expected=expected, found=found, fix=fix)

    kind = data.get("label_kind")
    if kind is not None and kind not in LABEL_KINDS:
        raise fail("label_kind", f"one of {list(LABEL_KINDS)}", repr(kind))
    classes = data.get("classes")
    if classes is not None:
        if not all(isinstance(name, str) and name.strip() for name in classes) \
                or len(set(classes)) != len(classes) or not classes \
                or len(classes) > _MAX_CLASSES:
            raise fail("classes", f"distinct, non-empty names (at most {_MAX_CLASSES})",
                       repr(classes)[:120])
        classes = tuple(classes)
    count = data.get("num_classes")
    if count is not None and not 2 <= count <= _MAX_CLASSES:
        raise fail("num_classes", f"an integer in [2, {_MAX_CLASSES}]", repr(count))
    if count is not None and classes is not None and count != len(classes):
        raise fail("num_classes", f"{len(classes)}, the number of classes listed", repr(count))
    if kind == "score" and (classes is not None or count is not None):
        raise fail("classes" if classes is not None else "num_classes",
                   "no classes for score labels", "classes for label_kind 'score'")
    if kind == "multi_hot" and count is not None:
        raise fail("num_classes", "no num_classes for multi-hot labels (their columns "
                   "count them)", repr(count))
    if kind == "class" and classes is not None and len(classes) < 2:
        raise fail("classes", "at least 2 classes", repr(list(classes)))
    return LabelDeclaration(kind, classes, count)


def read_folder_labels(folder: Path, header: Sequence[str], table: dict[str, list[str]],
                       count: int) -> FolderLabels:
    r"""The labels of the ``count`` rows of ``labels.csv`` (see the module's documentation).

    Args:
        folder (Path): The folder.
        header (Sequence[str]): ``labels.csv``'s columns, in order.
        table (dict[str, list[str]]): Its cells by column.
        count (int): Its rows.

    Raises:
        DatasetError: Two kinds of label at once, a kind declared that the files do not
            hold, or a bad cell or array (see the module's documentation).
    """
    declaration = read_declaration(folder)
    csv_path, declared = folder / LABELS_FILE, declaration.label_kind is not None
    columns = [name for name in header if name.startswith(LABEL_PREFIX)]
    array = folder / LABELS_ARRAY
    sources = [f"the '{LABEL_COLUMN}' column"] * (LABEL_COLUMN in table) \
        + [f"'{LABEL_PREFIX}<name>' columns"] * bool(columns) \
        + [LABELS_ARRAY] * (array.exists() or array.is_symlink())
    if len(sources) > 1:
        raise DatasetError("two kinds of label", file=folder, expected="one of: a 'label' "
                           "column, 'label_<name>' columns, labels.npy",
                           found=" and ".join(sources),
                           fix="Keep the labels in one place")
    if not sources:
        if declared or declaration.classes is not None or declaration.num_classes is not None:
            raise DatasetError("labels declared but absent", file=folder / DESCRIPTION_FILE,
                               field="label_kind", expected="labels in the folder: a 'label' "
                               "column, 'label_<name>' columns or labels.npy",
                               found=f"none; labels.csv has the columns {list(header)}",
                               fix="Add the labels, or remove dataset.json for data to "
                               "predict on")
        return FolderLabels(None, None)
    if columns or LABEL_COLUMN not in table:
        return _multi_hot(folder, columns, table, count, declaration)
    cells = table[LABEL_COLUMN]
    kind = declaration.label_kind
    if kind == "multi_hot":
        raise DatasetError("labels of another kind than declared", file=csv_path,
                           field=LABEL_COLUMN, expected="multi-hot labels, as dataset.json "
                           "declares: 'label_<name>' columns of 0/1, or labels.npy",
                           found="one 'label' column",
                           fix="Write one column per label, or declare the kind of the "
                           "'label' column in dataset.json")
    if kind is None and (declaration.classes is not None or declaration.num_classes is not None):
        kind = "class"
    if kind is None:
        kind = _infer_kind(cells, csv_path)
    if kind == "score":
        return FolderLabels(number_column(cells, csv_path, LABEL_COLUMN), "score", declared=declared)
    return _classes(cells, csv_path, declaration, declared)


def _cell_error(problem: str, path: Path, column: str, line: int, expected: str, found: str,
                fix: str) -> DatasetError:
    return DatasetError(problem, file=path, field=f"{column}, line {line}", expected=expected,
                        found=found, fix=fix)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def number_column(cells: Sequence[str], path: Path, column: str) -> np.ndarray:
    """``(N,)`` float32 of a column of finite numbers (line numbers count the header)."""
    values = np.empty(len(cells), dtype=np.float32)
    for i, text in enumerate(cells):
        value = _number(text)
        if value is None:
            raise _cell_error("label is not a number", path, column, i + 2, "a number",
                              repr(text) if text else "an empty cell",
                              "Write one number per cell (for class names, write every label "
                              "as a name and list the classes in dataset.json; a folder "
                              "without labels has no label column)")
        if not math.isfinite(value) or abs(value) > _FLOAT32_MAX:  # inf as float32
            raise _cell_error("NaN or infinite label", path, column, i + 2, "a finite number",
                              repr(text), "Give every sample a finite label, or leave the "
                              "sample out")
        values[i] = value
    return values


def _infer_kind(cells: Sequence[str], path: Path) -> str:
    """``'score'`` when the cells are numbers and one is not a whole number written as
    one; ``'class'`` for names; else a :class:`DatasetError` (see the module docstring)."""
    parsed = [_number(text) for text in cells]
    if all(value is None for value in parsed):
        return "class"  # names; _classes asks for the list of classes
    if not all(_WHOLE.fullmatch(text.strip()) for text in cells):
        return "score"  # a bad cell among numbers is named by number_column
    found = sorted({int(text) for text in cells})
    raise DatasetError(
        "labels could be classes or scores", file=path, field=LABEL_COLUMN,
        expected="a declaration of their kind in dataset.json",
        found=f"whole numbers only ({found[:8]}{' ...' if len(found) > 8 else ''})",
        fix=f'Write {DESCRIPTION_FILE} beside labels.csv: {{"label_kind": "class"}} (or with '
        f'"num_classes" or "classes") for class indices, or {{"label_kind": "score"}} for '
        "scores")


def _classes(cells: Sequence[str], path: Path, declaration: LabelDeclaration, declared: bool
             ) -> FolderLabels:
    """Class indices of a ``label`` column of names or of whole numbers."""
    names = declaration.classes
    named = [names is not None and text in names for text in cells]
    if all(named):
        index = {name: i for i, name in enumerate(names)}
        values = np.array([index[text] for text in cells], dtype=np.int64)
        return FolderLabels(values, "class", len(names), names, declared)
    whole = [bool(_WHOLE.fullmatch(text.strip())) for text in cells]
    if any(named) or not all(whole):  # names, of which some unknown; or not indices
        line = named.index(False) if any(named) else whole.index(False)
        text = cells[line]
        if names is None:
            found = sorted({t for t in cells if _number(t) is None})
            raise _cell_error(
                "class names without a list of classes", path, LABEL_COLUMN, line + 2,
                "class indices 0 .. C-1, or names listed as the classes in dataset.json",
                f"the name {text!r} ({len(found)} distinct names)",
                f'Write {DESCRIPTION_FILE} beside labels.csv: {{"label_kind": "class", '
                f'"classes": {_json_list(found)}}} (the classes in their index order)')
        raise _cell_error("unknown class", path, LABEL_COLUMN, line + 2,
                          f"one of the classes {list(names)[:12]} or an index",
                          repr(text) if text else "an empty cell",
                          f"Fix the cell, or add the class to 'classes' in {DESCRIPTION_FILE}")
    values = np.array([int(text) for text in cells], dtype=object)
    count = declaration.num_classes or (None if names is None else len(names))
    top = count if count is not None else int(values.max()) + 1
    bad = [i for i, value in enumerate(values) if not 0 <= value < min(top, _MAX_CLASSES)]
    if bad:
        raise _cell_error("class index out of range", path, LABEL_COLUMN, bad[0] + 2,
                          f"an index in [0, {min(top, _MAX_CLASSES) - 1}]",
                          repr(cells[bad[0]]),
                          "Number the classes from 0" + (f", or fix num_classes / classes in "
                                                         f"{DESCRIPTION_FILE}" if count else ""))
    if top < 2:
        raise DatasetError("one class only", file=path, field=LABEL_COLUMN,
                           expected="at least 2 classes",
                           found=f"only class {int(values.max())}",
                           fix=f'Declare the number of classes in {DESCRIPTION_FILE}: '
                           '{"label_kind": "class", "num_classes": C}')
    return FolderLabels(values.astype(np.int64), "class", top, names, declared)


def _json_list(names: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(f'"{name}"' for name in names[:limit])
    return f"[{shown}{', ...' if len(names) > limit else ''}]"


def _multi_hot(folder: Path, columns: list[str], table: dict[str, list[str]], count: int,
               declaration: LabelDeclaration) -> FolderLabels:
    """Multi-hot labels from ``label_<name>`` columns or ``labels.npy``."""
    declared = declaration.label_kind is not None
    where = folder / (LABELS_FILE if columns else LABELS_ARRAY)
    if declaration.label_kind not in (None, "multi_hot"):
        raise DatasetError("labels of another kind than declared", file=where,
                           expected=f"{declaration.label_kind} labels in a 'label' column, as "
                           "dataset.json declares",
                           found="'label_<name>' columns" if columns else "labels.npy",
                           fix="Declare label_kind 'multi_hot', or write a 'label' column")
    if declaration.num_classes is not None:
        raise DatasetError("num_classes for multi-hot labels", file=folder / DESCRIPTION_FILE,
                           field="num_classes", expected="no num_classes (the labels' "
                           "columns count them)", found=repr(declaration.num_classes),
                           fix="Remove num_classes, or list the label names as 'classes'")
    if columns:
        names = tuple(name.removeprefix(LABEL_PREFIX) for name in columns)
        if not all(names):
            raise DatasetError("a label column without a name", file=where, field=LABEL_PREFIX,
                               expected="columns 'label_<name>'", found=f"header {columns}",
                               fix="Name every label column, e.g. label_happy")
        values = np.stack([_zero_one(table[column], where, column) for column in columns],
                          axis=1)
        if declaration.classes is not None and declaration.classes != names:
            raise DatasetError("label names disagree", file=folder / DESCRIPTION_FILE,
                               field="classes", expected=f"the label columns' names {list(names)}"
                               ", in their order", found=repr(list(declaration.classes)),
                               fix="List the same names, or remove 'classes'")
        return FolderLabels(values, "multi_hot", len(names), names, declared,
                            f"{LABEL_PREFIX}<name>")
    values = open_npy(where, kinds="biuf", ranks=(2,), rows=count, root=folder,
                      what="(N, C) multi-hot labels of 0/1")
    values = np.asarray(values, dtype=np.float32)  # (N, C), read into memory
    bad = np.argwhere((values != 0) & (values != 1))
    if len(bad):
        row, column = (int(i) for i in bad[0])
        raise DatasetError("multi-hot label other than 0/1", file=where,
                           field=f"row {row}, column {column}", expected="only 0 and 1",
                           found=f"{values[row, column]} ({len(bad)} such values)",
                           fix="Save 1 where a label is present and 0 elsewhere")
    if values.shape[1] < 1:
        raise DatasetError("multi-hot labels without a column", file=where, field="shape",
                           expected="(N, C) with C >= 1", found=f"shape {values.shape}",
                           fix="Save one column per label")
    names = declaration.classes
    if names is not None and len(names) != values.shape[1]:
        raise DatasetError("label names disagree", file=folder / DESCRIPTION_FILE,
                           field="classes", expected=f"{values.shape[1]} names, one per "
                           f"column of {LABELS_ARRAY}", found=f"{len(names)} names",
                           fix="List one name per column")
    return FolderLabels(values, "multi_hot", values.shape[1], names, declared, LABELS_ARRAY)


def _zero_one(cells: Sequence[str], path: Path, column: str) -> np.ndarray:
    values = number_column(cells, path, column)
    bad = np.flatnonzero((values != 0) & (values != 1))
    if len(bad):
        raise _cell_error("multi-hot label other than 0/1", path, column, int(bad[0]) + 2,
                          "0 or 1", repr(cells[bad[0]]),
                          "Write 1 where the label is present and 0 elsewhere")
    return values
