"""Reader for the word-aligned MISA/MMIM pickles (``train.pkl``, ``dev.pkl``, ``test.pkl``).

Each file is a list of samples
``((word_ids (L,), visual (L, 47), acoustic (L, 74), words list[str]), label (1, 1),
segment_id "video[idx]")`` with a different ``L`` per sample. The files hold no BERT
features, so text becomes int64 token ids over a vocabulary built from the words of
the train split (id 0 is ``'<pad>'``, id 1 is ``'<unk>'`` for words first seen in
valid or test); the original ``word_ids`` index a vocabulary that is not shipped with
the files and are ignored. Every split is padded to its longest sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from pathlib import Path

import numpy as np

from dhmd_graph.data.batch import MultimodalDataset
from dhmd_graph.data.checks import (
    Budget,
    Location,
    as_array,
    check_finite,
    check_labels,
    check_splits,
    zero_negative_infinity,
)
from dhmd_graph.data.mmsa import SENTIMENT_RANGE
from dhmd_graph.data.safe_pickle import load_pickle

__all__ = ["MISA_FILES", "PAD", "UNK", "build_vocabulary", "load_misa"]

MISA_FILES = {"train": "train.pkl", "valid": "dev.pkl", "test": "test.pkl"}
PAD, UNK = "<pad>", "<unk>"
_LAYOUT = "((word_ids, visual, acoustic, words), label, segment_id)"


def build_vocabulary(sentences: Sequence[Sequence[str]]) -> list[str]:
    """The words by id: ``'<pad>'``, ``'<unk>'``, then each word in order of first use."""
    index = {PAD: 0, UNK: 1}
    for words in sentences:
        for word in words:
            index.setdefault(word, len(index))
    return list(index)


def load_misa(directory: str | PathLike, *, label_range: tuple[float, float] = SENTIMENT_RANGE
              ) -> dict[str, MultimodalDataset]:
    r"""Read a MISA/MMIM directory into one :class:`MultimodalDataset` per split.

    Args:
        directory (str or PathLike): The folder holding ``train.pkl``, ``dev.pkl`` and
            ``test.pkl``.
        label_range (tuple[float, float], optional): Inclusive range of valid labels.
            (default: ``(-3.0, 3.0)``)

    Returns:
        dict[str, MultimodalDataset]: Keys ``'train'``, ``'valid'`` (from ``dev.pkl``) and
        ``'test'``; modalities ``'text'`` (int64 token ids ``(N, T)``, with the words in
        ``dataset.vocabulary``), ``'audio'`` (acoustic) and ``'vision'`` (visual), each
        padded to the split's longest sample.

    Raises:
        DatasetError: For a missing, truncated or unsafe file or a malformed sample.
    """
    directory = Path(directory)
    samples = {split: _read_samples(directory / file, split) for split, file in MISA_FILES.items()}
    vocabulary = build_vocabulary([words for words, *_ in samples["train"]])
    token_ids = {word: i for i, word in enumerate(vocabulary)}
    datasets = {
        split: _to_dataset(samples[split], vocabulary, token_ids, label_range,
                           Location(directory / MISA_FILES[split], split))
        for split in MISA_FILES
    }
    check_splits(datasets, directory)
    return datasets


def _read_samples(path: Path, split: str) -> list[tuple]:
    """``(words, vision (L, d_v), audio (L, d_a), label, segment_id)`` per sample.

    Every sample is checked, and the padded split it will become is charged to the
    file's :class:`~dhmd_graph.data.checks.Budget`, before any word is converted.
    """
    entries = load_pickle(path)
    where = Location(path, split, Budget(path))
    if not isinstance(entries, (list, tuple)):
        raise where.error("not a MISA split", "-", f"a list of {_LAYOUT}",
                          f"a {type(entries).__name__}", "Pass the train/dev/test.pkl of MISA/MMIM")
    samples = []
    for i, entry in enumerate(entries):
        try:
            (_, visual, acoustic, words), label, segment = entry
        except (TypeError, ValueError):
            raise where.error("malformed sample", f"sample {i}", _LAYOUT,
                              f"a {type(entry).__name__}",
                              "Pass the pickles written by MISA/MMIM unchanged") from None
        if not isinstance(segment, (str, int)):
            raise where.error("malformed segment id", f"segment id of sample {i}",
                              "a string such as 'video[3]'",
                              f"{type(segment).__name__} {_preview(segment)}",
                              "Pass the pickles written by MISA/MMIM unchanged")
        if not isinstance(words, (list, tuple)) or not words:
            raise where.error("words are not a list", f"words of sample {i}",
                              "a non-empty list of strings",
                              f"{type(words).__name__} {_preview(words)} ('{segment}')",
                              "Export each sample's words as a list of strings")
        visual = as_array(visual, where, f"visual of sample {i}")
        acoustic = as_array(acoustic, where, f"acoustic of sample {i}")
        for field, array in (("visual", visual), ("acoustic", acoustic)):
            if (array.ndim != 2 or len(array) != len(words)
                    or array.dtype.kind not in "fiu"):
                raise where.error("features do not match the words", f"{field} of sample {i}",
                                  f"a numeric (L, d) array with L = {len(words)} words",
                                  f"shape {array.shape} ('{segment}')"
                                  if array.dtype.kind in "fiu"
                                  else f"dtype {array.dtype} ('{segment}')",
                                  "Every sample needs one feature row per word")
        label = as_array(label, where, f"label of sample {i}")
        if label.size != 1 or label.dtype.kind not in "fiu":
            raise where.error("label is not a single value", f"label of sample {i}",
                              "a (1, 1) array", f"shape {label.shape}, dtype {label.dtype} "
                              f"('{segment}')", "Export one sentiment score per sample")
        samples.append((words, visual, acoustic, float(label.reshape(())), str(segment)))
    _charge_padding(samples, where)
    for i, (words, *_) in enumerate(samples):
        if not all(isinstance(word, str) for word in words):
            bad = next(word for word in words if not isinstance(word, str))
            raise where.error("a word is not a string", f"words of sample {i}",
                              "a list of strings", f"{type(bad).__name__} {_preview(bad)}",
                              "Export each sample's words as a list of strings")
    return samples


def _preview(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _charge_padding(samples: list[tuple], where: Location) -> None:
    """Charge the padded split (int64 token ids and float32 features per step) and the
    words to the budget: ragged samples or shared word lists cannot expand unboundedly."""
    if not samples:
        return
    steps = max(len(words) for words, *_ in samples)
    widths = sum(max(sample[m].shape[1] for sample in samples) for m in (1, 2))
    padded = len(samples) * steps * (8 + 4 * widths)
    words = 8 * sum(len(words) for words, *_ in samples)
    where.budget.spend(padded + words, "the padded split", where.split)


def _to_dataset(samples: list[tuple], vocabulary: list[str], token_ids: dict[str, int],
                label_range: tuple[float, float], where: Location) -> MultimodalDataset:
    count = len(samples)
    steps = max((len(words) for words, *_ in samples), default=1)
    text = np.zeros((count, steps), dtype=np.int64)  # (N, T), 0 = <pad>
    widths = {"vision": {s[1].shape[1] for s in samples}, "audio": {s[2].shape[1] for s in samples}}
    for name, found in widths.items():
        if len(found) > 1:
            raise where.error("feature width differs between samples", name,
                              "one width for every sample", f"widths {sorted(found)}",
                              "Export every sample with the same features")
    vision = np.zeros((count, steps, widths["vision"].pop() if count else 0), dtype=np.float32)
    audio = np.zeros((count, steps, widths["audio"].pop() if count else 0), dtype=np.float32)
    for i, (words, visual, acoustic, _, _) in enumerate(samples):
        text[i, : len(words)] = [token_ids.get(word, 1) for word in words]
        vision[i, : len(words)] = visual
        audio[i, : len(words)] = acoustic
    ids = [segment for *_, segment in samples]
    audio = zero_negative_infinity(audio)
    check_finite(audio, where, "audio", ids)
    check_finite(vision, where, "vision", ids)
    lengths = np.array([len(words) for words, *_ in samples], dtype=np.int64)
    dataset = MultimodalDataset(
        {"text": text, "audio": audio, "vision": vision},
        {"text": lengths, "audio": lengths, "vision": lengths},
        np.array([label for *_, label, _ in samples], dtype=np.float32),
        ids,
        raw_text=[" ".join(words) for words, *_ in samples],
        vocabulary=vocabulary,
        source=str(where.file),
        split=where.split,
    )
    check_labels(dataset.labels, label_range, where, "label", ids)
    return dataset
