r"""A stand-in for small real data: one vector per utterance, words that carry the sentiment.

Most users of the library with their own data have about a thousand utterances, each
described by one feature vector per modality (no time axis) and a short transcript. This
module writes such a dataset as a plain-arrays folder (:mod:`~dhmd_graph.data.arrays`,
read by :func:`~dhmd_graph.data.load_dataset`), with a documented, planted truth, so that
tests and benchmarks can measure a model against the linear baselines of
:mod:`dhmd_graph.baselines` in that regime.

**Profile** ``mosi_utterance`` (``PROFILES``): CMU-MOSI at the utterance level, with the
standard split sizes 1284 / 229 / 686, the MOSI label distribution of
:mod:`~dhmd_graph.data.synthetic` (scores in :math:`[-3, 3]`, std about 1.6), and

* ``text``: token ids ``(N, T)`` over the *training* vocabulary (``vocabulary.json``: id 0
  ``<pad>``, id 1 ``<unk>``, then the words seen in the training split, most frequent
  first; about 2,200 words), 1–114 tokens (log-normal, median 9.5, mean about 12.6), and
  the words as ``raw_text``. Words of valid and test that the training split never saw are
  id 1 (about 11 % of their tokens).
* ``audio``: 4 values per utterance, ``(N, 1, 4)`` (in the spirit of openSMILE means:
  loudness, jitter, shimmer, F0 in units of 100 Hz), at their raw scales.
* ``vision``: 16 values per utterance, ``(N, 1, 16)`` (in the spirit of OpenFace
  action-unit frame counts): Poisson counts, ``log1p``, standardised with the training
  split's mean and std.

**Text.** Each utterance has a label :math:`y` and a *meant* sentiment
:math:`s = y + \epsilon`, :math:`\epsilon \sim \mathcal{N}(0, \sigma_s^2)` (the words do
not say everything the annotators heard). A token is, independently,

* a *topic* word with probability :math:`p_t`: one of the video's own words (each video
  draws :math:`k_t` words from a pool of 30,000 names; videos rarely share them, which is
  what makes valid and test words unknown);
* else a *sentiment* word with probability :math:`p_s`: word :math:`w` of the sentiment
  lexicon with probability :math:`\propto z_w \exp(\beta\, s\, \pi_w / 1.5)`, where
  :math:`\pi_w \sim \mathcal{N}(0, 1)` is the word's polarity and :math:`z_w` its Zipf
  weight;
* else a *neutral* word with probability :math:`\propto z_w`.

The general vocabulary has 1,800 words with Zipf weights :math:`z_w = (r_w + 2.7)^{-1.1}`
by rank :math:`r_w`; 30 % of them (never the 30 most frequent) are sentiment words.
A bag-of-words model therefore does well, and a model that must learn a 2,000-word
embedding from 1,284 utterances does not: ridge regression on TF-IDF features reaches a
test MAE of about 1.1 against 1.46 for the training mean.

**Audio and vision** see :math:`y` weakly, each with its own noise, and share a
per-video (speaker) offset: loudness rises with :math:`|y|`, F0 a little with :math:`y`;
smile-like action units (channels 0 and 1) rise with :math:`y`, a frown-like one
(channel 2) falls with it, the other 13 are noise. Alone, each reaches a test correlation
of about 0.1–0.3 with the label.

**Word vectors** (optional, ``vectors=``): a fastText ``.vec`` file (a header line
``count dim``, then ``word v_1 ... v_dim``) with a planted stand-in for pre-trained
vectors: every general word's vector holds its polarity (sentiment words) along a fixed
direction plus noise, every topic word a random vector; all 1,800 general words and 70 %
of the topic pool are in it. It is what :func:`~dhmd_graph.nn.load_word_vectors` reads,
to measure what vectors trained elsewhere bring to a small dataset.

Generation is deterministic per ``seed``. The generator version names the cache folder
of :func:`default_utterance_dataset_path`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np

from dhmd_graph.data.arrays import dataset_from_arrays, write_arrays
from dhmd_graph.data.synthetic import (
    _apportion,
    _mosi_table,
    _video_ids,
    profile_named,
    split_sizes,
)
from dhmd_graph.files import naming_file

__all__ = ["PROFILES", "UtteranceProfile", "default_utterance_dataset_path",
           "write_synthetic_utterances"]

SPLITS = ("train", "valid", "test")
GENERATOR_VERSION = 1  # bump when the generated content changes: it names the cache folder
PAD, UNKNOWN = "<pad>", "<unk>"
_CONSONANTS = tuple("bdfghklmnprstvz") + ("ch", "sh", "th", "tr", "st")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ou")


@dataclass(frozen=True)
class UtteranceProfile:
    r"""One utterance-level dataset: sizes, labels, vocabulary and signal strengths
    (the symbols are those of the module docstring).

    Attributes:
        name (str): The profile's name.
        sizes (dict[str, int]): Samples per split.
        label_tables (dict[str, dict[float, float]]): Per split, label value to probability.
        clips_per_video (float): Mean utterances per video.
        vocabulary_size (int): Words of the general vocabulary.
        zipf_exponent (float): Exponent of the general words' Zipf weights.
        sentiment_share (float): Share of the general words that carry sentiment.
        topic_pool (int): Names videos draw their topic words from.
        topic_words (int): :math:`k_t`, topic words per video.
        topic_probability (float): :math:`p_t`.
        sentiment_probability (float): :math:`p_s`.
        polarity_strength (float): :math:`\beta`.
        meaning_noise (float): :math:`\sigma_s`.
        median_length (float): Median tokens per utterance.
        length_spread (float): Std of the log length.
        max_length (int): Longest utterance in tokens.
        audio_strength (float): Strength of the label in audio.
        vision_strength (float): Strength of the label in vision.
        speaker_std (float): Std of the per-video offset of audio and vision.
    """

    name: str
    sizes: dict[str, int]
    label_tables: dict[str, dict[float, float]]
    clips_per_video: float = 2199 / 93
    vocabulary_size: int = 1800
    zipf_exponent: float = 1.1
    sentiment_share: float = 0.3
    topic_pool: int = 30000
    topic_words: int = 18
    topic_probability: float = 0.09
    sentiment_probability: float = 0.3
    polarity_strength: float = 0.6
    meaning_noise: float = 0.6
    median_length: float = 9.5
    length_spread: float = 0.78
    max_length: int = 114
    audio_strength: float = 0.3
    vision_strength: float = 0.1
    speaker_std: float = 0.7


PROFILES: dict[str, UtteranceProfile] = {
    "mosi_utterance": UtteranceProfile(
        "mosi_utterance", sizes={"train": 1284, "valid": 229, "test": 686},
        label_tables={"train": _mosi_table(53 / 1284), "valid": _mosi_table(13 / 229),
                      "test": _mosi_table(30 / 686)}),
}

_AUDIO_SCALE = np.array([0.2, 0.01, 0.04, 0.4], dtype=np.float32)  # loudness jitter shimmer F0
_AUDIO_MEAN = np.array([0.5, 0.02, 0.1, 1.5], dtype=np.float32)
_VISION_CHANNELS = 16
_VISION_SIGNAL = np.zeros(_VISION_CHANNELS)
_VISION_SIGNAL[:3] = (1.0, 0.6, -0.8)  # two smile-like units, one frown-like unit


@dataclass
class _World:
    """What the three splits share: the words, their polarities, the AU base rates."""

    words: np.ndarray  # (vocabulary_size + topic_pool,) str, general words first
    zipf: np.ndarray  # (vocabulary_size,) Zipf weights of the general words
    sentiment: np.ndarray  # (vocabulary_size,) bool
    polarity: np.ndarray  # (vocabulary_size,) float
    vision_base: np.ndarray  # (16,) log Poisson rates


def _words(count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` distinct pronounceable pseudo-words of two or three syllables."""
    syllables = np.array([c + v for c in _CONSONANTS for v in _VOWELS])
    pairs = len(syllables) ** 2
    index = rng.choice(pairs + len(syllables) ** 3, count, replace=False)
    words = []
    for i in index.tolist():
        three = i >= pairs
        i -= pairs * three
        parts = []
        for _ in range(3 if three else 2):
            i, s = divmod(i, len(syllables))
            parts.append(syllables[s])
        words.append("".join(parts))
    return np.array(words)


def _make_world(profile: UtteranceProfile, seed: int) -> _World:
    rng = np.random.default_rng([seed, list(PROFILES).index(profile.name), 0])
    size = profile.vocabulary_size
    sentiment = rng.random(size) < profile.sentiment_share
    sentiment[:30] = False  # the commonest words are function words
    return _World(
        words=_words(size + profile.topic_pool, rng),
        zipf=1.0 / (np.arange(size) + 2.7) ** profile.zipf_exponent,
        sentiment=sentiment,
        polarity=rng.standard_normal(size),
        vision_base=rng.uniform(0.5, 2.5, _VISION_CHANNELS),
    )


def _utterances(world: _World, profile: UtteranceProfile, meant: np.ndarray,
                video: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Per utterance the word indices into ``world.words`` (see the module docstring)."""
    n, size = len(meant), profile.vocabulary_size
    lengths = np.exp(rng.normal(np.log(profile.median_length), profile.length_spread, n))
    lengths = np.clip(np.round(lengths), 1, profile.max_length).astype(np.int64)
    topics = size + np.stack([rng.choice(profile.topic_pool, profile.topic_words, replace=False)
                              for _ in range(video.max() + 1)])  # (videos, k_t)
    neutral = world.zipf * ~world.sentiment
    neutral /= neutral.sum()
    utterances = []
    for i in range(n):
        kind = rng.random(lengths[i])
        topic = kind < profile.topic_probability
        polar = ~topic & (kind < profile.topic_probability + (1 - profile.topic_probability)
                          * profile.sentiment_probability)
        words = rng.choice(size, lengths[i], p=neutral)
        weight = world.zipf * world.sentiment * np.exp(
            profile.polarity_strength * meant[i] / 1.5 * world.polarity)
        words[polar] = rng.choice(size, int(polar.sum()), p=weight / weight.sum())
        words[topic] = rng.choice(topics[video[i]], int(topic.sum()))
        utterances.append(words)
    return utterances


def _split(world: _World, profile: UtteranceProfile, split: str, n: int, seed: int) -> dict:
    """One split's labels, ids, word indices, audio and vision counts."""
    rng = np.random.default_rng([seed, list(PROFILES).index(profile.name),
                                 1 + SPLITS.index(split)])
    labels = _apportion(profile.label_tables[split], n, rng)  # (n,)
    ids = _video_ids(n, profile.clips_per_video, rng)
    video = np.unique([i.split("$_$")[0] for i in ids], return_inverse=True)[1]  # (n,)
    meant = labels + rng.normal(0.0, profile.meaning_noise, n)
    utterances = _utterances(world, profile, meant, video, rng)
    videos = video.max() + 1
    speaker = profile.speaker_std * rng.standard_normal((videos, 4 + _VISION_CHANNELS))
    scaled = labels / 1.5  # (n,) about unit scale
    audio_signal = np.stack([np.abs(scaled), np.zeros(n), np.zeros(n), 0.5 * scaled], axis=1)
    audio = (profile.audio_strength * audio_signal + speaker[video, :4]
             + rng.standard_normal((n, 4)))  # (n, 4) standard units
    audio = _AUDIO_MEAN + _AUDIO_SCALE * audio.astype(np.float32)
    rates = (world.vision_base + profile.vision_strength * scaled[:, None] * _VISION_SIGNAL
             + 0.5 * speaker[video, 4:] + 0.3 * rng.standard_normal((n, _VISION_CHANNELS)))
    counts = rng.poisson(np.exp(rates))  # (n, 16) frames with the unit active
    return {"labels": labels.astype(np.float32), "ids": ids, "words": utterances,
            "audio": audio.astype(np.float32), "vision": np.log1p(counts)}


def write_synthetic_utterances(folder: str | PathLike, profile: str = "mosi_utterance",
                               sizes: Mapping[str, int] | None = None, seed: int = 0, *,
                               vectors: str | PathLike | None = None,
                               vector_dim: int = 50) -> Path:
    r"""Write an utterance-level dataset as a plain-arrays folder (see the module docstring).

    Args:
        folder (str or PathLike): A new or empty folder.
        profile (str, optional): A name of :data:`PROFILES`. (default: ``'mosi_utterance'``)
        sizes (Mapping[str, int], optional): Samples per split, keys ``'train'``,
            ``'valid'``, ``'test'``; :obj:`None` uses the profile's. (default: :obj:`None`)
        seed (int, optional): Everything drawn follows from it. (default: ``0``)
        vectors (str or PathLike, optional): Also write the planted word vectors there,
            as a fastText ``.vec`` file. (default: :obj:`None`)
        vector_dim (int, optional): Their width. (default: ``50``)

    Returns:
        Path: ``folder``, for :func:`~dhmd_graph.data.load_dataset`.

    Raises:
        ValueError: Unknown profile or bad ``sizes``.
        DatasetError: ``folder`` holds files.
    """
    spec = profile_named(PROFILES, profile, "write_synthetic_utterances")
    counts = split_sizes(sizes, spec.sizes, "write_synthetic_utterances", least=2)
    world = _make_world(spec, seed)
    splits = {split: _split(world, spec, split, n, seed) for split, n in counts.items()}
    train_words = np.concatenate(splits["train"]["words"])
    seen, counts = np.unique(train_words, return_counts=True)
    seen = seen[np.argsort(-counts, kind="stable")]  # most frequent first
    token_id = np.ones(len(world.words), dtype=np.int64)  # unknown
    token_id[seen] = np.arange(len(seen)) + 2
    vocabulary = [PAD, UNKNOWN, *world.words[seen].tolist()]
    train_vision = splits["train"]["vision"]
    mean, std = train_vision.mean(axis=0), train_vision.std(axis=0) + 1e-6
    datasets = {}
    for split, data in splits.items():
        ids = [f"{sample}" for sample in data["ids"]]
        datasets[split] = dataset_from_arrays(
            {"text": [token_id[words] for words in data["words"]], "audio": data["audio"],
             "vision": ((data["vision"] - mean) / std).astype(np.float32)},
            data["labels"], ids=ids, vocabulary=vocabulary, split=split,
            raw_text=[" ".join(world.words[words]) for words in data["words"]])
    path = write_arrays(datasets, folder)
    if vectors is not None:
        _write_vectors(world, spec, Path(vectors), vector_dim, seed)
    return path


def _write_vectors(world: _World, profile: UtteranceProfile, path: Path, dim: int,
                   seed: int) -> None:
    """The planted word vectors as a fastText ``.vec`` file (see the module docstring)."""
    rng = np.random.default_rng([seed, list(PROFILES).index(profile.name), 9])
    size = profile.vocabulary_size
    direction = rng.standard_normal(dim)
    direction /= np.linalg.norm(direction)
    polarity = np.where(world.sentiment, world.polarity, 0.0)  # (size,)
    general = polarity[:, None] * direction + 0.3 * rng.standard_normal((size, dim))
    topic = 0.3 * rng.standard_normal((profile.topic_pool, dim))
    kept = np.concatenate([np.arange(size), size + np.flatnonzero(
        rng.random(profile.topic_pool) < 0.7)])
    table = np.concatenate([general, topic])[kept]
    path.parent.mkdir(parents=True, exist_ok=True)
    with naming_file(path), path.open("w", encoding="utf-8") as file:
        file.write(f"{len(kept)} {dim}\n")
        for word, row in zip(world.words[kept], table, strict=True):
            file.write(word + " " + " ".join(f"{v:.4f}" for v in row) + "\n")


def default_utterance_dataset_path(profile: str = "mosi_utterance",
                                   sizes: Mapping[str, int] | None = None, seed: int = 0) -> Path:
    r"""The cached utterance dataset for these arguments, generated on first use.

    The folder lives in ``$DHMD_CACHE/synthetic_utterances/v<version>/``
    (``~/.cache/dhmd_graph`` when ``DHMD_CACHE`` is unset) as
    ``<profile>_<train-valid-test>_<seed>``. Arguments as in
    :func:`write_synthetic_utterances`.
    """
    spec = profile_named(PROFILES, profile, "write_synthetic_utterances")
    counts = split_sizes(sizes, spec.sizes, "write_synthetic_utterances", least=2)
    root = Path(os.environ.get("DHMD_CACHE") or Path.home() / ".cache" / "dhmd_graph")
    name = f"{spec.name}_{'-'.join(str(counts[s]) for s in SPLITS)}_{seed}"
    path = root / "synthetic_utterances" / f"v{GENERATOR_VERSION}" / name
    if not (path / "labels.csv").is_file():
        write_synthetic_utterances(path, spec.name, counts, seed)
    return path
