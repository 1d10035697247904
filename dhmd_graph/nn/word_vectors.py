r"""Word vectors trained elsewhere, as the start of a token embedding.

A token embedding learned from a thousand utterances starts from nothing and has little
to learn from; vectors trained on a large corpus (GloVe, word2vec, fastText) already
place words of similar meaning near each other. :func:`load_word_vectors` reads such a
file, local only, for the words of a dataset's vocabulary (the arrays folder's
``vocabulary.json``: the words by token id, id 0 padding, id 1 unknown); a modality's
``word_vectors`` field (:class:`~dhmd_graph.config.ModalityConfig`) names the file, and
:meth:`DHMD.load_word_vectors <dhmd_graph.model.DHMD.load_word_vectors>` copies the
vectors into its embedding, which then trains with the model or stays frozen
(``word_vectors_finetune``).

Formats (one vector per line, values separated by single spaces):

* GloVe: ``word v_1 ... v_D``, no header;
* word2vec's text format and fastText's ``.vec``: a first line ``count D``, then as GloVe.

The header is told from its two whole numbers; a word may contain spaces (a few GloVe
entries do), as the last :math:`D` fields are the values. A word is looked up as it is,
then lower-cased (GloVe's vocabularies are lower-case); the first entry of a word in the
file wins. The rows of padding, of the unknown token and of words the file lacks are
zero: they contribute nothing until trained (and nothing at all when frozen). The
coverage is the share of the vocabulary's words (ids 2 and up) found in the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from dhmd_graph.errors import DatasetError

__all__ = ["SPECIAL_TOKENS", "coverage_line", "load_word_vectors", "vector_width"]

SPECIAL_TOKENS = 2
"""Token ids below this are padding (0) and unknown (1), never looked up."""


def _header(first: str) -> tuple[int, int] | None:
    """``(count, D)`` when ``first`` is a word2vec / fastText header line."""
    parts = first.split()
    if len(parts) == 2 and all(part.isdigit() for part in parts):
        return int(parts[0]), int(parts[1])
    return None


def _open(path: Path):
    if not path.is_file():
        raise DatasetError("no word-vector file", file=path,
                           expected="a local GloVe, word2vec (text) or fastText .vec file",
                           found="nothing at this path" if not path.exists() else "a folder",
                           fix="Name the vectors file (nothing is downloaded)")
    return path.open(encoding="utf-8", errors="strict")


def vector_width(path: str | PathLike) -> int:
    """The width :math:`D` of the vectors in ``path`` (from its header or first line)."""
    path = Path(path)
    with _open(path) as file:
        first = file.readline()
    header = _header(first)
    if header is not None:
        return header[1]
    width = len(first.rstrip("\n").split(" ")) - 1
    if width < 1:
        raise DatasetError("malformed word-vector file", file=path, field="line 1",
                           expected="'word v_1 ... v_D' or a header 'count D'",
                           found=repr(first[:60]), fix="Check that this is a vectors file")
    return width


def load_word_vectors(path: str | PathLike, vocabulary: Sequence[str], *,
                      num_embeddings: int | None = None) -> tuple[Tensor, float]:
    r"""The vectors of ``vocabulary``'s words from a GloVe / word2vec / fastText text file
    (see the module docstring).

    Args:
        path (str or PathLike): The vectors file.
        vocabulary (Sequence[str]): The words by token id (id 0 padding, id 1 unknown).
        num_embeddings (int, optional): Rows of the result (an embedding may hold more
            ids than the vocabulary); :obj:`None` uses ``len(vocabulary)``.
            (default: :obj:`None`)

    Returns:
        tuple[Tensor, float]: ``(V, D)`` float32 vectors (zero rows where the file lacks
        the word, and for ids 0 and 1), and the coverage: the share of the words of ids
        :math:`\geq 2` found.

    Raises:
        DatasetError: No such file, a line with another number of values, a value that
            is not a number, or a file without any vector.
    """
    path = Path(path)
    rows = len(vocabulary) if num_embeddings is None else num_embeddings
    if rows < len(vocabulary):
        raise ValueError(f"load_word_vectors: num_embeddings={rows} is smaller than the "
                         f"vocabulary ({len(vocabulary)} words).")
    wanted: dict[str, list[int]] = {}
    for index, word in enumerate(vocabulary[SPECIAL_TOKENS:], start=SPECIAL_TOKENS):
        wanted.setdefault(word, []).append(index)
    lowered: dict[str, list[int]] = {}
    for word, indices in wanted.items():
        lowered.setdefault(word.lower(), []).extend(indices)
    width = vector_width(path)
    table = np.zeros((rows, width), dtype=np.float32)
    exact = np.zeros(rows, dtype=bool)
    found = np.zeros(rows, dtype=bool)
    with _open(path) as file:
        for number, line in enumerate(file, start=1):
            if number == 1 and _header(line) is not None:
                continue
            parts = line.rstrip("\n").rstrip(" ").rsplit(" ", width)
            if len(parts) != width + 1:
                if not line.strip():
                    continue
                raise DatasetError("malformed word-vector line", file=path,
                                   field=f"line {number}", expected=f"a word and {width} values",
                                   found=f"{len(parts) - 1} values",
                                   fix="Check that the file is complete and of one width")
            word = parts[0]
            targets = [(i, True) for i in wanted.get(word, ()) if not exact[i]]
            targets += [(i, False) for i in lowered.get(word.lower(), ()) if not found[i]]
            if not targets:
                continue
            try:
                vector = np.array(parts[1:], dtype=np.float32)
            except ValueError:
                raise DatasetError("word vector value is not a number", file=path,
                                   field=f"line {number}", expected=f"{width} numbers",
                                   found=repr(line[:60]), fix="Check the file's format") from None
            for index, is_exact in targets:
                if is_exact or not found[index]:
                    table[index] = vector
                    found[index] = True
                    exact[index] |= is_exact
    words = len(vocabulary) - SPECIAL_TOKENS
    coverage = float(found[SPECIAL_TOKENS:len(vocabulary)].mean()) if words > 0 else 0.0
    return torch.from_numpy(table), coverage


def coverage_line(modality: str, path: str | PathLike, coverage: float, words: int) -> str:
    """One line saying how much of a vocabulary of ``words`` words a vectors file covers."""
    return (f"{modality}: word vectors from '{path}' cover {coverage:.1%} of the vocabulary's "
            f"{words} words ({round(coverage * words)} found; the others start at zero)")
