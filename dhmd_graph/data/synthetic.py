r"""Synthetic MMSA pickles with the structure DHMD is about planted in them.

Real CMU-MOSI/MOSEI/CH-SIMS features cannot be downloaded here, so the library ships a
generator that writes a *real* MMSA pickle (same keys, shapes and dtypes as the
``aligned_50.pkl`` / ``unaligned_50.pkl`` / ``unaligned_39.pkl`` files) with the real split
sizes, feature widths and sequence lengths of each dataset profile, and labels drawn from
the real label distributions. What the features contain is planted, and documented here,
so that a model's behaviour on it can be checked against a known truth.

**Labels.** CMU-MOSEI: per split, the real value:count table (grid of sixths). CH-SIMS:
the real 11-value train table (steps of 0.2), whose proportions are reused for valid and
test. CMU-MOSI (our design; its exact table is not published in our sources): the real
zero counts per split (53/13/30 of 1284/229/686); the non-zero labels are symmetric in
sign and bimodal around :math:`\pm 1.5` (weight :math:`\exp(-(|y| - 1.5)^2 / 0.98)`), with
90 % of the mass on the 0.2 grid of five-annotator averages and 5 % each on quarters and
thirds. A split of ``n`` samples takes ``n * p`` samples of each value (largest remainder
rounding), shuffled; at the real split size MOSEI reproduces its label counts exactly.

**Latent factors.** With the label :math:`y` fixed, two *modality-exclusive* residuals
:math:`r_a, r_v \sim \mathcal{N}(0, \sigma_r^2)` are drawn independently of it, and the
*shared sentiment* is the rest,

.. math::
    s = y - r_a - r_v, \qquad y = s + r_a + r_v .

Every modality sees :math:`s` through the shared (modality-irrelevant) channel, with a
strength that decreases from text to audio to vision. Only audio sees :math:`r_a` (a
vocal-intensity-like factor) and only vision sees :math:`r_v` (a facial-expressivity-like
factor). With :math:`\sigma_r` a fixed fraction :math:`\rho` of the label's standard deviation,
text alone can explain at most
:math:`\operatorname{Var}(y) / \operatorname{Var}(s) = 1 / (1 + 2\rho^2)` of the label
variance (2/3 with the default :math:`\rho = 0.5`, in every profile): audio and vision carry
complementary information that text does not have.

**Features.** Per modality :math:`m` a latent code of :math:`k_m = \min(16, d_m)` channels
per time step is mapped to the :math:`d_m` features by one fixed random projection
:math:`P_m \in \mathbb{R}^{k_m \times d_m}` (drawn per seed, shared by the three splits):

.. math::
    x_{m,t} = \big(w_t \, (a_m \hat{s}\, e_0 + b_m \hat{r}_m\, e_1)
              + o_{m,\mathrm{video}} + \epsilon_{m,t}\big) P_m + \eta_{m,t},

where :math:`\hat{s}, \hat{r}_m` are the standardised factors, :math:`e_0` the shared
channel and :math:`e_1` the exclusive channel of the code, :math:`a_m` the shared
strength (text > audio > vision) and :math:`b_m` the exclusive strength (0 for text).
Nuisance factors: a per-video offset :math:`o_{m,\mathrm{video}}` (speaker/recording
identity, the same for every clip of a video), per-step code noise :math:`\epsilon` and
isotropic feature noise :math:`\eta`; both noises are moving averages over 2 % of the
padded length, so that pooling a 500-step sequence removes no more noise than pooling a
50-step one. The signal is confined to a time window:
:math:`w_t = 1` inside one contiguous window covering 30–60 % of the sequence (at the
same relative position in the three modalities: the moment the sentiment is expressed),
:math:`0` elsewhere. All strengths are fields of :class:`PlantedStructure`.

**Per-sample modality reliability** (generator version 3). A modality can fail in one
sample and work in the next, as a covered camera, a noisy microphone or an off-topic
transcript would: each sample has, independently, at most one *corrupted* modality, modality
:math:`m` with probability :math:`q_m` (``corruption_probability``). In a corrupted
modality noise replaces the signal: the planted factors are removed (:math:`a_m = b_m = 0`
for that sample) and the per-step code noise is :math:`\kappa` times stronger
(``corruption_noise_scale``) over the whole sequence, so the modality carries no label
information and looks noisier than usual; for corrupted text, its raw text has no sentiment
words. The other modalities of the sample are untouched, so a model can tell a corrupted
modality by looking at it, and a good dynamic graph should route teaching away from it in
that sample. Each split records it as ``modality_reliability``, an ``(N, 3)`` float32 array
over (text, audio, vision): 1 where the modality is reliable, 0 where it is corrupted (read
by :func:`~dhmd_graph.data.load_mmsa` into ``dataset.extras``). The corruption draws use
their own random stream, so with all :math:`q_m = 0` the file is the version-2 file plus an
all-ones ``modality_reliability``.

**Lengths and padding.** Each clip has a duration; the true length of each modality is
proportional to it (median 55 % of the padded length, some clips truncated at the
maximum). Steps beyond the true length are exactly zero. Unaligned files store
``audio_lengths``/``vision_lengths``; the text length is the attention-mask row of
``text_bert`` (``[CLS] words [SEP]`` token ids, mask, segment ids), as in MMSA. Aligned
files have one length per clip for the text (in ``text_bert``), while audio and vision
fill all steps, the signal window lying within the text's words.

**Other fields.** ``id`` is ``"<11-character video id>$_$<clip>"`` with several clips per
video (the real mean clips per video of each dataset) and no video shared between splits;
``raw_text`` has one word per text token, with sentiment words of the sign of :math:`s`
inside the signal window; ``classification_labels`` is 0/1/2 (negative/neutral/positive)
and ``annotations`` the matching words. CH-SIMS files add ``regression_labels_T/_A/_V``:
the part of the label each modality sees (:math:`s`, :math:`s + r_a`, :math:`s + r_v`) plus
annotator noise, clipped to :math:`[-1, 1]` and snapped to the 0.2 grid (also for a
corrupted modality: the annotators label the clip, not the corrupted features).

Generation is deterministic per ``seed`` and memory-lean: features are generated in
float32 chunks straight into memory-mapped scratch files next to the output, which the
pickle (protocol 5) then streams from without copying; full CMU-MOSEI aligned is about
4.0 GB on disk.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from dhmd_graph.errors import ConfigError
from dhmd_graph.files import naming_file

__all__ = [
    "DEMO_SIZES",
    "PROFILES",
    "RELIABILITY_KEY",
    "PlantedStructure",
    "SyntheticProfile",
    "default_dataset_path",
    "planted_features",
    "write_synthetic",
]

SPLITS = ("train", "valid", "test")
MODALITIES = ("text", "audio", "vision")
DEMO_SIZES = {"train": 1500, "valid": 300, "test": 600}
"""Split sizes of the example (``examples/mosei_dhmd.py``) and of ``dhmd train`` without
``--data``: large enough to learn the planted structure, small enough for CPU minutes."""
GENERATOR_VERSION = 3  # bump when the generated content changes: it names the cache folder
# 3: per-sample modality reliability (corrupted modalities, ``modality_reliability``)
RELIABILITY_KEY = "modality_reliability"
"""The split key of the ``(N, 3)`` per-sample reliability of (text, audio, vision)."""
_CHUNK = 256  # samples generated at once; part of the random stream, so a constant
_CLS, _SEP, _FIRST_WORD_ID = 101, 102, 1000


def _table(text: str) -> dict[float, int]:
    """``"-3:98, -2.67:213, ..."`` to ``{value: count}``, values snapped to sixths."""
    pairs = (item.split(":") for item in text.split(","))
    return {round(float(v) * 6) / 6: int(c) for v, c in pairs}


_MOSEI_TABLES = {
    "train": _table(
        "-3:98, -2.67:213, -2.33:302, -2:458, -1.67:545, -1.33:580, -1:655, -0.67:804, "
        "-0.5:2, -0.33:1078, -0.17:3, 0:3540, 0.17:8, 0.33:2160, 0.5:7, 0.67:1769, 0.83:3, "
        "1:1341, 1.17:3, 1.33:1001, 1.5:5, 1.67:733, 1.83:1, 2:512, 2.33:298, 2.67:159, 3:48"
    ),
    "valid": _table(
        "-3:3, -2.67:21, -2.33:23, -2:30, -1.67:57, -1.33:72, -1:69, -0.67:103, -0.33:128, "
        "0:433, 0.17:2, 0.33:269, 0.5:3, 0.67:210, 0.83:3, 1:144, 1.33:113, 1.5:3, 1.67:73, "
        "1.83:1, 2:61, 2.33:30, 2.5:1, 2.67:12, 3:7"
    ),
    "test": _table(
        "-3:25, -2.67:45, -2.33:86, -2:159, -1.67:154, -1.33:176, -1:166, -0.67:212, "
        "-0.5:2, -0.33:325, 0:1025, 0.17:1, 0.33:573, 0.5:1, 0.67:536, 0.83:1, 1:398, "
        "1.33:293, 1.67:205, 2:166, 2.33:69, 2.67:35, 3:6"
    ),
}
_SIMS_TRAIN = {k / 5: c for k, c in zip(range(-5, 6), (373, 79, 90, 80, 120, 207, 83, 46, 79,
                                                       55, 156), strict=True)}


def _mosi_table(zero_fraction: float) -> dict[float, float]:
    """Our MOSI label distribution (see the module docstring): value -> probability."""
    families = (  # (mass, magnitudes)
        (0.90, [k / 5 for k in range(1, 16)]),  # 0.2 grid
        (0.05, [k / 4 for k in (1, 3, 5, 7, 9, 11)]),  # quarters off that grid
        (0.05, [k / 3 for k in (1, 2, 4, 5, 7, 8)]),  # thirds off that grid
    )
    table = {0.0: zero_fraction}
    for mass, magnitudes in families:
        weight = np.exp(-((np.array(magnitudes) - 1.5) ** 2) / (2 * 0.7**2))
        for magnitude, w in zip(magnitudes, weight / weight.sum(), strict=True):
            for sign in (-1.0, 1.0):
                table[sign * magnitude] = (1 - zero_fraction) * mass * float(w) / 2
    return table


@dataclass(frozen=True)
class SyntheticProfile:
    r"""The shape of one real dataset: widths, lengths, split sizes and labels.

    Attributes:
        name (str): ``'mosi'``, ``'mosei'`` or ``'sims'``.
        dims (dict[str, int]): Feature width per modality.
        aligned_steps (dict[str, int] or None): Padded lengths of the word-aligned file;
            :obj:`None` where the dataset has none (CH-SIMS).
        unaligned_steps (dict[str, int]): Padded lengths of the unaligned file.
        sizes (dict[str, int]): Real number of clips per split.
        label_scale (float): Labels lie in ``[-label_scale, label_scale]``.
        label_tables (dict[str, dict[float, float]]): Per split, label value to count or
            probability (normalised when used).
        clips_per_video (float): Mean number of clips per video.
        unimodal_labels (bool): Whether the file has ``regression_labels_T/_A/_V``.
    """

    name: str
    dims: dict[str, int]
    aligned_steps: dict[str, int] | None
    unaligned_steps: dict[str, int]
    sizes: dict[str, int]
    label_scale: float
    label_tables: dict[str, dict[float, float]]
    clips_per_video: float
    unimodal_labels: bool = False


def _per_modality(text: int, audio: int, vision: int) -> dict[str, int]:
    return dict(zip(MODALITIES, (text, audio, vision), strict=True))


PROFILES: dict[str, SyntheticProfile] = {
    "mosi": SyntheticProfile(
        name="mosi", dims=_per_modality(768, 5, 20), aligned_steps=_per_modality(50, 50, 50),
        unaligned_steps=_per_modality(50, 375, 500),
        sizes={"train": 1284, "valid": 229, "test": 686}, label_scale=3.0,
        label_tables={"train": _mosi_table(53 / 1284), "valid": _mosi_table(13 / 229),
                      "test": _mosi_table(30 / 686)},
        clips_per_video=2199 / 93,
    ),
    "mosei": SyntheticProfile(
        name="mosei", dims=_per_modality(768, 74, 35), aligned_steps=_per_modality(50, 50, 50),
        unaligned_steps=_per_modality(50, 500, 500),
        sizes={"train": 16326, "valid": 1871, "test": 4659}, label_scale=3.0,
        label_tables=_MOSEI_TABLES, clips_per_video=23453 / 3228,
    ),
    "sims": SyntheticProfile(
        name="sims", dims=_per_modality(768, 33, 709), aligned_steps=None,
        unaligned_steps=_per_modality(39, 400, 55),
        sizes={"train": 1368, "valid": 456, "test": 457}, label_scale=1.0,
        label_tables=dict.fromkeys(SPLITS, _SIMS_TRAIN), clips_per_video=2281 / 60,
        unimodal_labels=True,
    ),
}


@dataclass(frozen=True)
class PlantedStructure:
    r"""Strengths of the planted factors (see the module docstring for the model).

    Args:
        shared_strength (tuple[float, float, float], optional): :math:`a_m`, the strength of
            the shared sentiment channel in text, audio, vision. (default: ``(2.0, 1.0, 0.8)``)
        exclusive_strength (tuple[float, float], optional): :math:`b_m`, the strength of
            the modality-exclusive residual in audio and vision (text has none).
            (default: ``(2.0, 2.0)``)
        exclusive_std (float, optional): :math:`\sigma_r` of each exclusive residual, as a
            fraction :math:`\rho` of the label's standard deviation (from the train table).
            (default: ``0.5``)
        video_offset_std (float, optional): Std of the per-video nuisance offset of the code.
            (default: ``0.3``)
        step_noise_std (float, optional): Std of the per-step code noise. (default: ``1.0``)
        feature_noise_std (float, optional): Std of the isotropic feature noise.
            (default: ``1.0``)
        noise_correlation (float, optional): The step and feature noise is a moving average
            over this fraction of the padded length (at least one step), so that pooling a
            500-step sequence removes no more noise than pooling a 50-step one.
            (default: ``0.02``)
        code_channels (int, optional): Latent code channels per step (at most ``d_m``).
            (default: ``16``)
        window_fraction (tuple[float, float], optional): Range of the signal window's share
            of the sequence. (default: ``(0.3, 0.6)``)
        unimodal_label_noise (float, optional): Std of the annotator noise of the CH-SIMS
            unimodal labels, as a fraction of the label scale. (default: ``0.2``)
        corruption_probability (tuple[float, float, float], optional): :math:`q_m`, the
            probability that a sample's text, audio, vision is its one corrupted modality
            (they must sum to at most 1). (default: ``(0.1, 0.1, 0.1)``)
        corruption_noise_scale (float, optional): :math:`\kappa`, the factor on the step
            noise of a corrupted modality. (default: ``3.0``)
    """

    shared_strength: tuple[float, float, float] = (2.0, 1.0, 0.8)
    exclusive_strength: tuple[float, float] = (2.0, 2.0)
    exclusive_std: float = 0.5
    video_offset_std: float = 0.3
    step_noise_std: float = 1.0
    feature_noise_std: float = 1.0
    noise_correlation: float = 0.02
    code_channels: int = 16
    window_fraction: tuple[float, float] = (0.3, 0.6)
    unimodal_label_noise: float = 0.2
    corruption_probability: tuple[float, float, float] = (0.1, 0.1, 0.1)
    corruption_noise_scale: float = 3.0

    def __post_init__(self) -> None:
        q = self.corruption_probability
        if len(q) != len(MODALITIES) or min(q) < 0 or sum(q) > 1 + 1e-9:
            raise ConfigError(
                f"PlantedStructure.corruption_probability: expected one probability per "
                f"modality {MODALITIES}, each >= 0 and summing to at most 1 (a sample has "
                f"at most one corrupted modality); found {q}."
            )
        if self.corruption_noise_scale < 0:
            raise ConfigError(f"PlantedStructure.corruption_noise_scale: expected >= 0, found "
                              f"{self.corruption_noise_scale}.")


def _corrupted(n: int, probability: tuple[float, ...], rng: np.random.Generator
               ) -> np.ndarray:
    """``(n, M)`` bool: at most one corrupted modality per sample, ``m`` with probability
    ``probability[m]``."""
    edges = np.cumsum(probability)  # (M,)
    draw = rng.random(n)[:, None]  # (n, 1)
    lower = np.concatenate([[0.0], edges[:-1]])
    return (draw >= lower) & (draw < edges)  # (n, M)


def profile_named(profiles: Mapping[str, Any], name: str, owner: str) -> Any:
    """The profile called ``name`` (case-insensitive) of a generator's table, or a
    :class:`~dhmd_graph.errors.ConfigError` from ``owner`` naming the known ones."""
    try:
        return profiles[name.lower()]
    except (KeyError, AttributeError):
        raise ConfigError(f"{owner}: unknown profile {name!r}; expected one of "
                          f"{sorted(profiles)}.") from None


def split_sizes(sizes: Mapping[str, int] | None, default: Mapping[str, int], owner: str, *,
                least: int = 1) -> dict[str, int]:
    """Samples per split: ``default`` without ``sizes``, else ``sizes`` checked to give an
    integer ``>= least`` for each of :data:`SPLITS` (a
    :class:`~dhmd_graph.errors.ConfigError` from ``owner`` otherwise)."""
    if sizes is None:
        return dict(default)
    if set(sizes) != set(SPLITS) or any(int(n) != n or n < least for n in sizes.values()):
        wanted = "a positive integer" if least == 1 else f"an integer >= {least}"
        raise ConfigError(f"{owner}: sizes must give {wanted} for each of {list(SPLITS)}; "
                          f"found {dict(sizes)}. Example: {dict(default)}.")
    return {split: int(sizes[split]) for split in SPLITS}


def _steps(profile: SyntheticProfile, aligned: bool) -> dict[str, int]:
    if not aligned:
        return profile.unaligned_steps
    if profile.aligned_steps is None:
        raise ConfigError(f"write_synthetic: profile {profile.name!r} has no aligned version "
                          "(the real dataset ships unaligned features only); pass aligned=False.")
    return profile.aligned_steps


def _apportion(table: Mapping[float, float], n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` labels with the proportions of ``table`` (largest remainder), shuffled."""
    values = np.array(list(table), dtype=np.float64)
    quota = np.array(list(table.values()), dtype=np.float64)
    quota *= n / quota.sum()
    counts = np.floor(quota).astype(np.int64)
    remainder_order = np.argsort(-(quota - counts), kind="stable")
    counts[remainder_order[: n - counts.sum()]] += 1
    return rng.permutation(np.repeat(values, counts))


def _label_std(profile: SyntheticProfile) -> float:
    table = profile.label_tables["train"]
    values, weights = np.array(list(table)), np.array(list(table.values()), dtype=np.float64)
    weights /= weights.sum()
    return float(np.sqrt(weights @ values**2 - (weights @ values) ** 2))


@dataclass
class _World:
    """What the three splits share: the profile, the structure and the projections."""

    profile: SyntheticProfile
    structure: PlantedStructure
    steps: dict[str, int]
    aligned: bool
    projections: dict[str, np.ndarray]  # (k_m, d_m) float32 per modality

    @property
    def exclusive_std(self) -> float:
        return self.structure.exclusive_std * _label_std(self.profile)

    @property
    def shared_std(self) -> float:
        """Population std of ``s = y - r_a - r_v`` (from the train label table)."""
        return float(np.sqrt(_label_std(self.profile) ** 2 + 2 * self.exclusive_std**2))


def _make_world(profile: SyntheticProfile, structure: PlantedStructure, aligned: bool,
                seed: int) -> _World:
    rng = np.random.default_rng([seed, list(PROFILES).index(profile.name), 0])
    projections = {}
    for name in MODALITIES:
        dim = profile.dims[name]
        code = min(structure.code_channels, dim)
        projections[name] = (rng.standard_normal((code, dim)) / np.sqrt(code)).astype(np.float32)
    return _World(profile, structure, _steps(profile, aligned), aligned, projections)


_FILLER = ("the", "a", "and", "i", "it", "was", "movie", "this", "that", "so", "just", "um",
           "really", "story", "of", "to", "is", "in", "you", "know", "like", "think")
_POSITIVE = ("good", "great", "loved", "funny", "enjoyed", "amazing", "best", "nice")
_NEGATIVE = ("bad", "boring", "hated", "awful", "worst", "disappointing", "poor", "weak")
_VOCABULARY = _FILLER + _POSITIVE + _NEGATIVE
_CLASS_NAMES = np.array(["Negative", "Neutral", "Positive"], dtype=object)
_ID_ALPHABET = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))


def _video_ids(n: int, clips_per_video: float, rng: np.random.Generator) -> np.ndarray:
    """``(n,)`` object array ``"<video>$_$<clip>"``; a video's clips are contiguous."""
    ids: list[str] = []
    while len(ids) < n:
        video = "".join(rng.choice(_ID_ALPHABET, 11))
        clips = 1 + int(rng.poisson(clips_per_video - 1))
        ids += [f"{video}$_${clip}" for clip in range(1, clips + 1)]
    return np.array(ids[:n], dtype=object)


def _lengths(n: int, steps: dict[str, int], aligned: bool, rng: np.random.Generator
             ) -> dict[str, np.ndarray]:
    """``(n,)`` true lengths per modality, all proportional to one clip duration."""
    duration = np.exp(rng.normal(0.0, 0.45, n)) * 0.55  # median 55 % of the padded length
    lengths = {name: np.clip(np.round(duration * t), 4, t).astype(np.int64)
               for name, t in steps.items()}
    if aligned:  # word-aligned audio/vision fill every step
        lengths["audio"] = np.full(n, steps["audio"], dtype=np.int64)
        lengths["vision"] = np.full(n, steps["vision"], dtype=np.int64)
    return lengths


def _window(start: np.ndarray, width: np.ndarray, length: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
    """Window ``[begin, end)`` at relative position ``start``/``width`` of ``length`` steps."""
    begin = np.minimum(np.floor(start * length), length - 1).astype(np.int64)
    end = np.maximum(np.ceil((start + width) * length).astype(np.int64), begin + 1)
    return begin, np.minimum(end, length)


def _text(shared: np.ndarray, text_length: np.ndarray, begin: np.ndarray, end: np.ndarray,
          steps: int, corrupted: np.ndarray, rng: np.random.Generator
          ) -> tuple[np.ndarray, np.ndarray]:
    """``raw_text`` (N,) and ``text_bert`` (N, 3, T_l): one word per token between
    ``[CLS]`` and ``[SEP]``; 40 % of the words inside the signal window carry the
    sentiment's sign (none where the text is ``corrupted`` (N,)), the others are filler."""
    n = len(shared)
    tokens = np.zeros((n, 3, steps), dtype=np.int64)
    raw_text = np.empty(n, dtype=object)
    filler = rng.integers(0, len(_FILLER), (n, steps))
    polar = rng.integers(0, len(_POSITIVE), (n, steps)) + len(_FILLER)
    polar += np.where(shared < 0, len(_POSITIVE), 0)[:, None]
    position = np.arange(steps)[None, :]
    window = (position >= begin[:, None]) & (position < end[:, None]) & ~corrupted[:, None]
    word = np.where(window & (rng.random((n, steps)) < 0.4), polar, filler)
    for i in range(n):
        words = word[i, 1 : text_length[i] - 1]  # token 0 is [CLS], the last [SEP]
        tokens[i, 0, : text_length[i]] = [_CLS, *(words + _FIRST_WORD_ID), _SEP]
        raw_text[i] = " ".join(_VOCABULARY[w] for w in words)
    tokens[:, 1] = position < text_length[:, None]  # attention mask; segment ids stay 0
    return raw_text, tokens


def _correlated_noise(rng: np.random.Generator, shape: tuple[int, int, int], span: int
                      ) -> np.ndarray:
    """Unit-variance float32 noise ``(n, T, c)``, a moving average of white noise over
    ``span`` steps (white for ``span=1``)."""
    n, steps, channels = shape
    white = rng.standard_normal((n, steps + span - 1, channels), dtype=np.float32)
    if span == 1:
        return white
    total = np.cumsum(white, axis=1)  # (n, T + span - 1, c)
    window_sums = total[:, span - 1 :].copy()
    window_sums[:, 1:] -= total[:, : steps - 1]
    return window_sums / np.float32(np.sqrt(span))


def planted_features(signal: np.ndarray, offset: np.ndarray, length: np.ndarray,
                     begin: np.ndarray, end: np.ndarray, projection: np.ndarray, steps: int,
                     structure: PlantedStructure, rng: np.random.Generator,
                     noise_scale: np.ndarray | None = None) -> np.ndarray:
    r"""``(n, T, d)`` float32 features of one chunk of one modality: the code signal inside
    each sample's window ``[begin, end)``, plus the per-video offset and the step noise,
    projected by ``projection`` and noised (see the module docstring; the noise levels
    are those of ``structure``). ``noise_scale`` ``(n,)`` multiplies each sample's step
    noise (a corrupted modality's, see the module docstring; default ones). Also used by
    :mod:`~dhmd_graph.data.synthetic_tasks`.

    Shapes:
        - **input:** signal :math:`(n, k)`, offset :math:`(n, k)`, length / begin / end
          :math:`(n,)`, projection :math:`(k, d)`
        - **output:** :math:`(n, T, d)`, exactly zero after each length
    """
    n, code = len(signal), projection.shape[0]
    if noise_scale is None:
        noise_scale = np.ones(n, dtype=np.float32)
    position = np.arange(steps)[None, :]
    window = (position >= begin[:, None]) & (position < end[:, None])  # (n, T)
    span = max(1, round(structure.noise_correlation * steps))
    codes = _correlated_noise(rng, (n, steps, code), span)  # (n, T, k)
    codes *= (structure.step_noise_std * noise_scale)[:, None, None].astype(np.float32)
    codes += offset[:, None, :]
    codes += window[:, :, None] * signal[:, None, :]
    features = codes @ projection  # (n, T, d)
    noise = _correlated_noise(rng, features.shape, span)
    noise *= structure.feature_noise_std
    features += noise
    features *= (position < length[:, None])[:, :, None]  # exact zeros after the length
    return features


def _scratch_array(path: Path, shape: tuple[int, ...]) -> np.memmap:
    """A float32 ``.npy`` of ``shape`` mapped for writing, its disk blocks reserved first.

    Writing through a mapping into a sparse file that the disk cannot back kills the
    process with ``SIGBUS`` (no clean-up runs); reserving the blocks turns a full disk
    into an :class:`OSError` (``ENOSPC``) here, which removes the scratch folder.
    """
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)
    if hasattr(os, "posix_fallocate"):
        with naming_file(path), open(path, "r+b") as file:
            os.posix_fallocate(file.fileno(), 0, os.fstat(file.fileno()).st_size)
    return array


def _write_split(world: _World, split: str, n: int, seed: int, scratch: Path) -> dict:
    """One split as a dict of MMSA arrays; features are memory-mapped in ``scratch``."""
    profile, structure = world.profile, world.structure
    rng = np.random.default_rng([seed, list(PROFILES).index(profile.name),
                                 1 + SPLITS.index(split)])
    labels = _apportion(profile.label_tables[split], n, rng)  # (n,) float64
    exclusive = rng.normal(0.0, world.exclusive_std, (2, n))  # r_a, r_v
    shared = labels - exclusive.sum(axis=0)  # s = y - r_a - r_v

    exclusive_of = {"audio": exclusive[0], "vision": exclusive[1]}
    # Own stream, so that the draws above and below are those of a file without corruption.
    corruption_rng = np.random.default_rng([seed, list(PROFILES).index(profile.name),
                                            1 + SPLITS.index(split), 1])
    corrupted = _corrupted(n, structure.corruption_probability, corruption_rng)  # (n, M)

    # Per modality the code signal (n, k_m): the standardised shared sentiment on
    # channel 0, the modality's standardised exclusive residual on channel 1.
    signals = {}
    for m, name in enumerate(MODALITIES):
        signal = np.zeros((n, world.projections[name].shape[0]), dtype=np.float32)
        signal[:, 0] = structure.shared_strength[m] * shared / world.shared_std
        if name in exclusive_of:
            signal[:, 1] = (structure.exclusive_strength[m - 1] * exclusive_of[name]
                            / world.exclusive_std)
        signal[corrupted[:, m]] = 0.0  # noise replaces the signal
        signals[name] = signal
    noise_scales = {name: np.where(corrupted[:, m], structure.corruption_noise_scale, 1.0)
                    for m, name in enumerate(MODALITIES)}  # (n,) per modality

    ids = _video_ids(n, profile.clips_per_video, rng)
    video = np.unique([i.split("$_$")[0] for i in ids], return_inverse=True)[1]
    offsets = {name: structure.video_offset_std * rng.standard_normal(
        (video.max() + 1, world.projections[name].shape[0])).astype(np.float32)
        for name in MODALITIES}
    lengths = _lengths(n, world.steps, world.aligned, rng)
    low, high = structure.window_fraction
    width = rng.uniform(low, high, n)
    start = rng.uniform(0.0, 1.0 - width)
    # Aligned audio/vision share the text's word positions; unaligned ones their own length.
    reference = {name: lengths["text"] if world.aligned else lengths[name] for name in MODALITIES}
    windows = {name: _window(start, width, reference[name]) for name in MODALITIES}
    raw_text, text_bert = _text(shared, lengths["text"], *windows["text"], world.steps["text"],
                                corrupted[:, MODALITIES.index("text")], rng)

    features = {name: _scratch_array(scratch / f"{split}_{name}.npy",
                                     (n, world.steps[name], world.profile.dims[name]))
                for name in MODALITIES}
    for lo in range(0, n, _CHUNK):
        rows = slice(lo, min(lo + _CHUNK, n))
        for name in MODALITIES:
            features[name][rows] = planted_features(
                signals[name][rows], offsets[name][video[rows]], lengths[name][rows],
                windows[name][0][rows], windows[name][1][rows], world.projections[name],
                world.steps[name], world.structure, rng, noise_scale=noise_scales[name][rows])

    classes = np.sign(labels).astype(np.int64) + 1  # 0 negative, 1 neutral, 2 positive
    data = {
        "raw_text": raw_text,
        "id": ids,
        # Plain ndarray views of the memory maps: pickle protocol 5 writes them in-band
        # straight from the mapped file, without an in-memory copy.
        **{name: features[name].view(np.ndarray) for name in MODALITIES},
        "text_bert": text_bert,
        "regression_labels": labels.astype(np.float32),
        "classification_labels": classes.astype(np.float32),
        "annotations": _CLASS_NAMES[classes],
        RELIABILITY_KEY: (~corrupted).astype(np.float32),  # (n, 3) 1 reliable, 0 corrupted
    }
    if not world.aligned:
        data["audio_lengths"] = lengths["audio"]
        data["vision_lengths"] = lengths["vision"]
    if profile.unimodal_labels:
        scale = profile.label_scale
        for name in MODALITIES:  # the part of the label the modality sees, plus noise
            value = shared + exclusive_of.get(name, 0.0)
            value += rng.normal(0.0, structure.unimodal_label_noise * scale, n)
            snapped = np.round(np.clip(value, -scale, scale) * 5 / scale) * scale / 5
            data[f"regression_labels_{name[0].upper()}"] = snapped.astype(np.float32)
    return data


def write_synthetic(path: str | PathLike, profile: str = "mosei", aligned: bool = True,
                    sizes: Mapping[str, int] | None = None, seed: int = 0, *,
                    structure: PlantedStructure | None = None) -> Path:
    r"""Write a synthetic MMSA pickle with planted structure (see the module docstring).

    The file is written to a temporary name in the same folder and renamed when complete,
    so a reader never sees a partial file; on a failure (a full disk raises
    :class:`OSError`, ``Ctrl-C``) the temporary folder is removed.

    Args:
        path (str or PathLike): The ``.pkl`` file to write (parent folders are created).
        profile (str, optional): ``'mosi'``, ``'mosei'`` or ``'sims'``: feature widths,
            sequence lengths, split sizes and label distributions of that dataset.
            (default: ``'mosei'``)
        aligned (bool, optional): Word-aligned layout (all modalities 50 steps, no
            ``*_lengths``) or the unaligned one. CH-SIMS has no aligned version.
            (default: :obj:`True`)
        sizes (Mapping[str, int], optional): Samples per split, keys ``'train'``,
            ``'valid'``, ``'test'``; :obj:`None` uses the real sizes. (default: :obj:`None`)
        seed (int, optional): Everything drawn follows from it. (default: ``0``)
        structure (PlantedStructure, optional): Strengths of the planted factors;
            :obj:`None` uses the defaults. (default: :obj:`None`)

    Returns:
        Path: ``path``.

    Raises:
        ValueError: Unknown profile, an aligned CH-SIMS, or bad ``sizes``.
    """
    spec = profile_named(PROFILES, profile, "write_synthetic")
    counts = split_sizes(sizes, spec.sizes, "write_synthetic")
    world = _make_world(spec, structure or PlantedStructure(), aligned, seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as scratch:
        data = {split: _write_split(world, split, n, seed, Path(scratch))
                for split, n in counts.items()}
        _publish(data, Path(scratch), path)
        del data  # release the memory maps before their files are removed
    return path


def _publish(data: dict, scratch: Path, path: Path) -> None:
    """Pickles ``data`` (protocol 5 streams memory-mapped arrays from their files) into
    ``scratch``, then moves it to ``path`` in one step, so ``path`` is never half written."""
    partial = scratch / "partial.pkl"
    with naming_file(path), partial.open("wb") as file:
        pickle.dump(data, file, protocol=5)
    os.replace(partial, path)


def default_dataset_path(profile: str = "mosei", aligned: bool = True,
                         sizes: Mapping[str, int] | None = None, seed: int = 0,
                         generate: bool = True) -> Path:
    r"""The cached synthetic dataset for these arguments, generated on first use
    (``generate=False``: only its path, to say whether it must be generated).

    The file lives in ``$DHMD_CACHE/synthetic/v<version>/`` (``~/.cache/dhmd_graph`` when
    ``DHMD_CACHE`` is unset) as ``<profile>_<aligned|unaligned>_<train-valid-test>_<seed>.pkl``;
    the version changes whenever the generator's output does. Arguments as in
    :func:`write_synthetic`.

    Returns:
        Path: The pickle, ready for :func:`~dhmd_graph.data.load_mmsa`.
    """
    spec = profile_named(PROFILES, profile, "write_synthetic")
    counts = split_sizes(sizes, spec.sizes, "write_synthetic")
    _steps(spec, aligned)  # fail before touching the cache
    root = Path(os.environ.get("DHMD_CACHE") or Path.home() / ".cache" / "dhmd_graph")
    name = (f"{spec.name}_{'aligned' if aligned else 'unaligned'}_"
            f"{'-'.join(str(counts[s]) for s in SPLITS)}_{seed}.pkl")
    path = root / "synthetic" / f"v{GENERATOR_VERSION}" / name
    if generate and not path.is_file():
        write_synthetic(path, spec.name, aligned, counts, seed)
    return path
