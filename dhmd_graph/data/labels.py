r"""Label kinds, the label vocabularies of the emotion benchmarks, and label conversions.

A :class:`~dhmd_graph.data.MultimodalDataset` holds one of three kinds of label:

========================  ===============  ========  ==========================================
kind                      shape            dtype     used for
========================  ===============  ========  ==========================================
``'score'``               ``(N,)``         float32   sentiment regression (MOSI, MOSEI, SIMS)
``'class'``               ``(N,)``         int64     one class of ``C`` (IEMOCAP-6, MMSA's
                                                     3-class sentiment, binary humour/sarcasm)
``'multi_hot'``           ``(N, C)``       float32   ``C`` independent 0/1 labels (MOSEI's six
                                                     emotions, IEMOCAP's four binary tasks)
========================  ===============  ========  ==========================================

The CMU-MOSEI labels computational sequence (``CMU_MOSEI_Labels.csd``) has 7 columns per
segment: the sentiment in :math:`[-3, 3]`, then the intensities of happiness, sadness,
anger, surprise, disgust and fear, each the mean of the annotators' 0–3 ratings.
:func:`mosei_emotion_presence` turns those rows into the six-emotion multi-hot labels used
in the literature: an emotion is *present* when its intensity is greater than 0.
"""

from __future__ import annotations

from os import PathLike
from typing import Any

import numpy as np

from dhmd_graph.errors import DatasetError
from dhmd_graph.protocols import (  # the label vocabularies belong to the protocols
    IEMOCAP4_EMOTIONS,
    IEMOCAP6_EMOTIONS,
    MOSEI_EMOTIONS,
    SENTIMENT3_CLASSES,
)
from dhmd_graph.tasks import LABEL_KINDS

__all__ = [
    "IEMOCAP4_EMOTIONS",
    "IEMOCAP6_EMOTIONS",
    "LABEL_KINDS",
    "MAX_CLASSES",
    "MOSEI_EMOTIONS",
    "SENTIMENT3_CLASSES",
    "mosei_emotion_presence",
]

MAX_CLASSES = 10_000
"""The most classes (or multi-hot labels) a dataset may have: a bound checked before any
per-class array is allocated, so that a stray class id such as ``2_000_000_000`` is an error
naming the label, not an attempt to allocate gigabytes."""

MOSEI_INTENSITY_RANGE = (0.0, 3.0)


def mosei_emotion_presence(rows: Any, *, file: str | PathLike | None = None,
                           field: str = "labels") -> np.ndarray:
    r"""Six-emotion multi-hot labels from CMU-MOSEI's 7-column label rows.

    .. math::
        \mathrm{present}_{i,e} = \mathbb{1}[\mathrm{row}_{i, 1 + e} > 0],
        \qquad e \in \{\text{happiness}, \ldots, \text{fear}\}

    A pure function: the CSD alignment calls it on the label rows of each segment;
    column 0 (the sentiment) is ignored here.

    Args:
        rows (array-like): ``(N, 7)`` rows ``[sentiment, happiness, sadness, anger,
            surprise, disgust, fear]``; a single row ``(7,)`` is also accepted.
        file (str or PathLike, optional): Where the rows came from, for messages.
            (default: :obj:`None`)
        field (str, optional): The field name used in messages. (default: ``'labels'``)

    Returns:
        np.ndarray: ``(N, 6)`` float32 in :math:`\{0, 1\}`, columns in the order of
        :data:`MOSEI_EMOTIONS` (``(6,)`` for a single row).

    Raises:
        DatasetError: Rows that are not 7 wide, or an intensity that is NaN or outside
            :math:`[0, 3]`.
    """
    array = np.asarray(rows, dtype=np.float64)
    single = array.ndim == 1
    array = np.atleast_2d(array)
    if array.ndim != 2 or array.shape[1] != 1 + len(MOSEI_EMOTIONS):
        raise DatasetError("wrong MOSEI label rows", file=file, field=field,
                           expected="(N, 7) rows: sentiment, then the six emotion intensities",
                           found=f"shape {np.shape(rows)}",
                           fix="Pass the rows of the CMU_MOSEI_Labels sequence unchanged")
    intensity = array[:, 1:]  # (N, 6)
    low, high = MOSEI_INTENSITY_RANGE
    bad = ~((intensity >= low) & (intensity <= high))  # NaN is bad too
    if bad.any():
        row, column = (int(i) for i in np.argwhere(bad)[0])
        raise DatasetError("emotion intensity outside [0, 3]", file=file, field=field,
                           expected=f"intensities in [{low:g}, {high:g}]",
                           found=f"{MOSEI_EMOTIONS[column]} = {intensity[row, column]} in row {row}"
                           f" ({int(bad.sum())} such values)",
                           fix="Check the column order: sentiment first, then the emotions")
    present = (intensity > 0).astype(np.float32)
    return present[0] if single else present
