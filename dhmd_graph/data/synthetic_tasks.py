r"""Synthetic MulT-format pickles for the classification, multi-label and binary tasks,
with planted structure.

The emotion benchmarks (IEMOCAP, CMU-MOSEI's emotions, UR-FUNNY, MUStARD) cannot be
downloaded here, so, as :mod:`~dhmd_graph.data.synthetic` does for sentiment regression,
this module writes files in a real layout — MulT's ``{train, valid, test}`` dicts of
``text``, ``audio``, ``vision``, ``labels`` and ``id``, read by
:func:`~dhmd_graph.data.load_mult` — whose features contain a documented, planted truth.

**Features.** Every modality's features come from the regression generator's
:func:`~dhmd_graph.data.synthetic.planted_features`: a code of
:math:`k_m = \min(16, d_m)` channels per step, fixed random projection to :math:`d_m`
features, per-video offsets, correlated step and feature noise, the signal confined to a
time window covering 30–60 % of the sequence, variable true lengths with exact zero
padding (MulT files store no lengths: the padding is part of what a model sees, as with
the real files). What differs per task is which latent *factors* sit on which code
channel of which modality, with which strength (the profile's ``plan``), and how the
labels follow from the factors. Each factor has unit variance.

**Profiles** (``PROFILES``; sizes, widths and lengths are the real ones where noted):

``iemocap4`` — MulT's IEMOCAP: 2717 / 798 / 938 utterances, text 300 (GloVe), audio 74
(COVAREP), vision 35 (Facet), 20 aligned steps (unaligned 20 / 400 / 500). One emotion
per utterance in the proportions of the four-class IEMOCAP (neutral 1708, happy 595,
sad 1084, angry 1103), stored as MulT does: ``labels`` ``(N, 4, 2)``, one
``[absent, present]`` pair per emotion (read as ``(N, 4)`` multi-hot, the four binary
tasks). Task ``multilabel``.

``iemocap6`` — the six-class utterance protocol: happy 648, sad 1084, neutral 1708,
angry 1103, excited 1041, frustrated 1849 (7433 utterances; the usual 5810 / 1623
train+valid / test split, our 90/10 cut of the 5810 into 5229 / 581), with MulT's
IEMOCAP widths and lengths (ours: the real six-class features are utterance vectors).
``labels`` ``(N,)`` int64 in that class order. Task ``multiclass``.

Both IEMOCAP profiles place each class at a point of the pleasure–arousal–dominance
space (our choice of centres, in the spirit of the PAD emotion model; × 1.6, plus
within-class noise of std 0.6 per factor):

==========  =========  =======  =========
class       valence    arousal  dominance
==========  =========  =======  =========
neutral      0.0        0.0      0.0
happy        0.8        0.5      0.4
sad         -0.6       -0.4     -0.4
angry       -0.5        0.7      0.4
excited      0.6        0.9      0.3
frustrated  -0.6        0.3     -0.4
==========  =========  =======  =========

Valence is the *shared* factor: text sees it strongly (words carry valence), audio and
vision less. Arousal is *audio-exclusive* (prosody) and dominance *vision-exclusive*
(posture, face), as in the regression profiles' exclusive residuals. A text-only model
therefore confuses classes of equal valence (sad / angry / frustrated; happy / excited),
and only the fusion separates them.

``mosei_emotions`` — CMU-MOSEI's six emotions: 16326 / 1871 / 4659 segments, text 300,
audio 74, vision 35, 50 aligned steps (unaligned 50 / 500 / 500). Six unit Gaussian
latents :math:`z` with the correlations below (our design: negative emotions co-occur,
anger with disgust most; happiness excludes them), an emotion present when
:math:`z_e > \Phi^{-1}(1 - \pi_e)`, with presence rates :math:`\pi` = happiness 0.52,
sadness 0.25, anger 0.21, surprise 0.10, disgust 0.17, fear 0.08 (our estimates of the
shares of segments with intensity > 0 in CMU-MOSEI). ``labels`` ``(N, 6, 2)`` one-hot per
emotion. Task ``multilabel``.

==========  =====  =====  =====  =====  =====  =====
correlation  hap    sad    ang    sur    dis    fea
==========  =====  =====  =====  =====  =====  =====
happiness    1     -0.35  -0.35   0.15  -0.35  -0.15
sadness             1      0.35   0.0    0.30   0.30
anger                      1      0.05   0.55   0.15
surprise                          1      0.05   0.20
disgust                                  1      0.15
fear                                            1
==========  =====  =====  =====  =====  =====  =====

Each emotion's latent has its own code channel; the modalities see them with different
strengths, so each modality is best at some emotions: text at happiness and sadness
(1.5), anger and disgust (0.8); audio at anger and fear (1.5), sadness (0.8); vision at
happiness, surprise and disgust (1.5), anger (0.5).

``humour`` — UR-FUNNY (v2): 7614 / 980 / 994 clips, text 300, audio 81, vision 75 (HKT's
feature widths), 50 aligned steps (unaligned 50 / 200 / 200, ours). Balanced labels
(ties broken by the latent). As in the regression profiles, the funniness is
:math:`h = s + r_a + r_v` with a shared part :math:`s` that all modalities see (text
2.0, audio 1.0, vision 0.8) and exclusive parts (audio: laughter-prone delivery,
vision: a smile; 2.0 each, :math:`\sigma_r = 0.5\,\sigma_h`); funny when :math:`h > 0`.
The signal window ends each sequence: the punchline comes last. ``labels`` ``(N,)``
int64. Task ``binary``.

``sarcasm`` — MUStARD: 690 utterances, balanced, our 70/15/15 split 484 / 103 / 103
(the real protocol is 5-fold cross-validation), with the humour widths and lengths.
Sarcasm is *incongruity*: the words carry a literal valence :math:`v_t` (text, 2.0);
the delivery (audio 1.0, vision 2.0) expresses a valence of the same sign when sincere
and of the opposite sign when sarcastic. No modality alone predicts the label (each
valence is symmetric either way); only their product does. A weak direct cue, a
sarcastic tone in audio (exclusive channel; mean ±0.5 per class, strength 1.5), lets a
linear model on audio do better than chance. ``labels`` ``(N,)`` int64. Task ``binary``.

Generation is deterministic per ``seed``, and features are written in chunks to
memory-mapped scratch files that the pickle streams from, as in
:func:`~dhmd_graph.data.synthetic.write_synthetic`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from statistics import NormalDist

import numpy as np

from dhmd_graph.data.labels import IEMOCAP4_EMOTIONS, IEMOCAP6_EMOTIONS, MOSEI_EMOTIONS
from dhmd_graph.data.synthetic import (  # the shared machinery of the planted generators
    PlantedStructure,
    _apportion,
    _lengths,
    _publish,
    _scratch_array,
    _video_ids,
    _window,
    planted_features,
    profile_named,
    split_sizes,
)

__all__ = [
    "MOSEI_CORRELATION", "MOSEI_PRESENCE", "PROFILES", "TaskProfile", "default_task_dataset_path",
    "write_synthetic_task",
]

SPLITS = ("train", "valid", "test")
MODALITIES = ("text", "audio", "vision")
GENERATOR_VERSION = 1  # bump when the generated content changes: it names the cache folder
_CHUNK = 256

Plan = dict[str, tuple[tuple[str, float], ...]]
"""Per modality, the ``(factor, strength)`` on code channel 0, 1, ...."""


@dataclass(frozen=True)
class TaskProfile:
    r"""One synthetic task: its shapes, its labels and where its factors are visible.

    Attributes:
        name (str): The profile's name (also a kind of :func:`~dhmd_graph.metrics.metrics_for`).
        task (str): ``'multiclass'``, ``'multilabel'`` or ``'binary'``.
        label_names (tuple[str, ...]): The classes or labels.
        dims (dict[str, int]): Feature width per modality.
        aligned_steps (dict[str, int]): Padded lengths of the aligned file.
        unaligned_steps (dict[str, int]): Padded lengths of the unaligned file.
        sizes (dict[str, int]): Samples per split.
        clips_per_video (float): Mean number of clips per video (for the per-video offsets).
        plan (Plan): Per modality, the factors on its code channels and their strengths.
        punchline (bool): The signal window ends each sequence instead of lying anywhere.
    """

    name: str
    task: str
    label_names: tuple[str, ...]
    dims: dict[str, int]
    aligned_steps: dict[str, int]
    unaligned_steps: dict[str, int]
    sizes: dict[str, int]
    clips_per_video: float
    plan: Plan
    punchline: bool = False


def _per_modality(text: int, audio: int, vision: int) -> dict[str, int]:
    return dict(zip(MODALITIES, (text, audio, vision), strict=True))


_MULT_DIMS = _per_modality(300, 74, 35)
_HKT_DIMS = _per_modality(300, 81, 75)
_PAD_PLAN: Plan = {
    "text": (("valence", 2.0),),
    "audio": (("valence", 0.8), ("arousal", 2.0)),
    "vision": (("valence", 0.6), ("dominance", 2.0)),
}
_EMOTION_PLAN: Plan = {
    "text": tuple(zip(MOSEI_EMOTIONS, (1.5, 1.5, 0.8, 0.0, 0.8, 0.0), strict=True)),
    "audio": tuple(zip(MOSEI_EMOTIONS, (0.0, 0.8, 1.5, 0.0, 0.0, 1.5), strict=True)),
    "vision": tuple(zip(MOSEI_EMOTIONS, (1.5, 0.0, 0.5, 1.5, 1.5, 0.0), strict=True)),
}
_HUMOUR_PLAN: Plan = {
    "text": (("shared", 2.0),),
    "audio": (("shared", 1.0), ("audio_exclusive", 2.0)),
    "vision": (("shared", 0.8), ("vision_exclusive", 2.0)),
}
_SARCASM_PLAN: Plan = {
    "text": (("literal_valence", 2.0),),
    "audio": (("expressed_valence", 1.0), ("sarcastic_tone", 1.5)),
    "vision": (("expressed_valence", 2.0),),
}
_IEMOCAP_SIZES = {"train": 2717, "valid": 798, "test": 938}

PROFILES: dict[str, TaskProfile] = {
    "iemocap4": TaskProfile(
        "iemocap4", "multilabel", IEMOCAP4_EMOTIONS, _MULT_DIMS, _per_modality(20, 20, 20),
        _per_modality(20, 400, 500), _IEMOCAP_SIZES, 30.0, _PAD_PLAN),
    "iemocap6": TaskProfile(
        "iemocap6", "multiclass", IEMOCAP6_EMOTIONS, _MULT_DIMS, _per_modality(20, 20, 20),
        _per_modality(20, 400, 500), {"train": 5229, "valid": 581, "test": 1623}, 50.0,
        _PAD_PLAN),
    "mosei_emotions": TaskProfile(
        "mosei_emotions", "multilabel", MOSEI_EMOTIONS, _MULT_DIMS, _per_modality(50, 50, 50),
        _per_modality(50, 500, 500), {"train": 16326, "valid": 1871, "test": 4659},
        23453 / 3228, _EMOTION_PLAN),
    "humour": TaskProfile(
        "humour", "binary", ("not funny", "funny"), _HKT_DIMS, _per_modality(50, 50, 50),
        _per_modality(50, 200, 200), {"train": 7614, "valid": 980, "test": 994}, 5.4,
        _HUMOUR_PLAN, punchline=True),
    "sarcasm": TaskProfile(
        "sarcasm", "binary", ("sincere", "sarcastic"), _HKT_DIMS, _per_modality(50, 50, 50),
        _per_modality(50, 200, 200), {"train": 484, "valid": 103, "test": 103}, 1.0,
        _SARCASM_PLAN),
}

# Pleasure-arousal-dominance centres of the IEMOCAP classes (module docstring).
_PAD_CENTRES = {
    "neutral": (0.0, 0.0, 0.0), "happy": (0.8, 0.5, 0.4), "sad": (-0.6, -0.4, -0.4),
    "angry": (-0.5, 0.7, 0.4), "excited": (0.6, 0.9, 0.3), "frustrated": (-0.6, 0.3, -0.4),
}
_PAD_SCALE, _PAD_NOISE = 1.6, 0.6
_IEMOCAP4_COUNTS = {"neutral": 1708, "happy": 595, "sad": 1084, "angry": 1103}
_IEMOCAP6_COUNTS = {"happy": 648, "sad": 1084, "neutral": 1708, "angry": 1103, "excited": 1041,
                    "frustrated": 1849}
MOSEI_PRESENCE = dict(zip(MOSEI_EMOTIONS, (0.52, 0.25, 0.21, 0.10, 0.17, 0.08), strict=True))
MOSEI_CORRELATION = np.array([
    [1.0, -0.35, -0.35, 0.15, -0.35, -0.15],
    [-0.35, 1.0, 0.35, 0.0, 0.30, 0.30],
    [-0.35, 0.35, 1.0, 0.05, 0.55, 0.15],
    [0.15, 0.0, 0.05, 1.0, 0.05, 0.20],
    [-0.35, 0.30, 0.55, 0.05, 1.0, 0.15],
    [-0.15, 0.30, 0.15, 0.20, 0.15, 1.0],
])
_HUMOUR_EXCLUSIVE = 0.5  # sigma_r / sigma_h of each exclusive part
_SARCASTIC_TONE = 0.5  # class mean of the audio tone cue


def _standardised(values: np.ndarray) -> np.ndarray:
    return (values - values.mean()) / values.std()


def _pad_classes(counts: Mapping[str, int], n: int, rng: np.random.Generator
                 ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Class indices with the proportions of ``counts``, and their PAD factors."""
    names = list(counts)
    classes = _apportion(dict(enumerate(counts.values())), n, rng).astype(np.int64)  # (n,)
    centres = _PAD_SCALE * np.array([_PAD_CENTRES[name] for name in names])  # (C, 3)
    prior = np.array(list(counts.values()), dtype=np.float64) / sum(counts.values())
    mean = prior @ centres
    std = np.sqrt(prior @ (centres - mean) ** 2 + _PAD_NOISE**2)  # (3,) mixture std
    factors = (centres[classes] + rng.normal(0.0, _PAD_NOISE, (n, 3)) - mean) / std
    return classes, dict(zip(("valence", "arousal", "dominance"), factors.T, strict=True))


def _iemocap4(n: int, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    classes, factors = _pad_classes(_IEMOCAP4_COUNTS, n, rng)
    present = np.eye(len(IEMOCAP4_EMOTIONS), dtype=np.int64)[classes]  # (n, 4)
    return np.eye(2, dtype=np.float32)[present], factors  # (n, 4, 2) one-hot per emotion


def _iemocap6(n: int, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    return _pad_classes(_IEMOCAP6_COUNTS, n, rng)


def _mosei_emotions(n: int, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    latent = rng.multivariate_normal(np.zeros(6), MOSEI_CORRELATION, n, method="cholesky")
    thresholds = np.array([NormalDist().inv_cdf(1 - MOSEI_PRESENCE[e]) for e in MOSEI_EMOTIONS])
    present = (latent > thresholds).astype(np.int64)  # (n, 6)
    return np.eye(2, dtype=np.float32)[present], dict(zip(MOSEI_EMOTIONS, latent.T, strict=True))


def _humour(n: int, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    shared = rng.standard_normal(n)
    exclusive = rng.normal(0.0, _HUMOUR_EXCLUSIVE, (2, n))
    funniness = shared + exclusive.sum(axis=0)
    funny = (funniness > np.median(funniness)).astype(np.int64)  # balanced
    return funny, {"shared": _standardised(shared),
                   "audio_exclusive": _standardised(exclusive[0]),
                   "vision_exclusive": _standardised(exclusive[1])}


def _sarcasm(n: int, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    sarcastic = rng.permutation(np.arange(n) % 2).astype(np.int64)  # balanced
    literal = rng.standard_normal(n)
    sign = np.where(sarcastic == 1, -1.0, 1.0) * np.sign(literal)
    expressed = sign * np.abs(rng.standard_normal(n))
    tone = rng.normal(np.where(sarcastic == 1, _SARCASTIC_TONE, -_SARCASTIC_TONE), 1.0)
    return sarcastic, {"literal_valence": literal, "expressed_valence": expressed,
                       "sarcastic_tone": _standardised(tone)}


_LABELS: dict[str, Callable[[int, np.random.Generator], tuple[np.ndarray, dict]]] = {
    "iemocap4": _iemocap4, "iemocap6": _iemocap6, "mosei_emotions": _mosei_emotions,
    "humour": _humour, "sarcasm": _sarcasm,
}


def _task_split(profile: TaskProfile, n: int, steps: Mapping[str, int], aligned: bool,
               projections: Mapping[str, np.ndarray], structure: PlantedStructure,
               signal_scale: float, rng: np.random.Generator,
               features: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, dict]:
    """Fill ``features`` (per modality ``(n, T_m, d_m)``) with one split's planted features.

    Returns:
        tuple: the ``labels`` array of the file, the ``(n,)`` ids, and the factors.
    """
    labels, factors = _LABELS[profile.name](n, rng)
    signals = {}
    for name in MODALITIES:
        signal = np.zeros((n, projections[name].shape[0]), dtype=np.float32)  # (n, k_m)
        for channel, (factor, strength) in enumerate(profile.plan[name]):
            signal[:, channel] = signal_scale * strength * factors[factor]
        signals[name] = signal
    ids = _video_ids(n, profile.clips_per_video, rng)
    video = np.unique([i.split("$_$")[0] for i in ids], return_inverse=True)[1]
    offsets = {name: structure.video_offset_std * rng.standard_normal(
        (video.max() + 1, projections[name].shape[0])).astype(np.float32)
        for name in MODALITIES}
    lengths = _lengths(n, dict(steps), aligned, rng)
    low, high = structure.window_fraction
    width = rng.uniform(low, high, n)
    start = 1.0 - width if profile.punchline else rng.uniform(0.0, 1.0 - width)
    reference = {name: lengths["text"] if aligned else lengths[name] for name in MODALITIES}
    windows = {name: _window(start, width, reference[name]) for name in MODALITIES}
    for lo in range(0, n, _CHUNK):
        rows = slice(lo, min(lo + _CHUNK, n))
        for name in MODALITIES:
            features[name][rows] = planted_features(
                signals[name][rows], offsets[name][video[rows]], lengths[name][rows],
                windows[name][0][rows], windows[name][1][rows], projections[name], steps[name],
                structure, rng)
    return labels, ids, factors


def write_synthetic_task(path: str | PathLike, profile: str = "iemocap4", aligned: bool = True,
                         sizes: Mapping[str, int] | None = None, seed: int = 0, *,
                         structure: PlantedStructure | None = None,
                         signal_scale: float = 1.0) -> Path:
    r"""Write a synthetic MulT-format pickle for a task profile (see the module docstring).

    The file is written to a temporary name in the same folder and renamed when complete.

    Args:
        path (str or PathLike): The ``.pkl`` file to write (parent folders are created).
        profile (str, optional): ``'iemocap4'``, ``'iemocap6'``, ``'mosei_emotions'``,
            ``'humour'`` or ``'sarcasm'``. (default: ``'iemocap4'``)
        aligned (bool, optional): The aligned lengths, or the unaligned ones.
            (default: :obj:`True`)
        sizes (Mapping[str, int], optional): Samples per split, keys ``'train'``,
            ``'valid'``, ``'test'``; :obj:`None` uses the profile's. (default: :obj:`None`)
        seed (int, optional): Everything drawn follows from it. (default: ``0``)
        structure (PlantedStructure, optional): The noise levels, window and code width
            (its strength fields are not used: the profile's plan sets the strengths);
            :obj:`None` uses the defaults. (default: :obj:`None`)
        signal_scale (float, optional): Multiplies every strength of the plan (lower is
            harder). (default: ``1.0``)

    Returns:
        Path: ``path``, for :func:`~dhmd_graph.data.load_mult` or
        :func:`~dhmd_graph.data.load_dataset`.

    Raises:
        ValueError: Unknown profile or bad ``sizes``.
    """
    spec = profile_named(PROFILES, profile, "write_synthetic_task")
    counts = split_sizes(sizes, spec.sizes, "write_synthetic_task", least=2)
    structure = structure or PlantedStructure()
    steps = spec.aligned_steps if aligned else spec.unaligned_steps
    rng = np.random.default_rng([seed, list(PROFILES).index(spec.name), 0])
    projections = {}
    for name in MODALITIES:
        code = min(structure.code_channels, spec.dims[name])
        projections[name] = (rng.standard_normal((code, spec.dims[name])) / np.sqrt(code)
                             ).astype(np.float32)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as scratch:
        data = {}
        for index, (split, n) in enumerate(counts.items()):
            features = {name: _scratch_array(Path(scratch) / f"{split}_{name}.npy",
                                             (n, steps[name], spec.dims[name]))
                        for name in MODALITIES}
            split_rng = np.random.default_rng([seed, list(PROFILES).index(spec.name), 1 + index])
            labels, ids, _ = _task_split(spec, n, steps, aligned, projections, structure,
                                        signal_scale, split_rng, features)
            # Plain ndarray views of the memory maps: protocol 5 streams them from the file.
            data[split] = {**{name: features[name].view(np.ndarray) for name in MODALITIES},
                           "labels": labels, "id": ids}
        _publish(data, Path(scratch), path)
        del data  # release the memory maps before their files are removed
    return path


def default_task_dataset_path(profile: str = "iemocap4", aligned: bool = True,
                              sizes: Mapping[str, int] | None = None, seed: int = 0) -> Path:
    r"""The cached synthetic task dataset for these arguments, generated on first use.

    The file lives in ``$DHMD_CACHE/synthetic_tasks/v<version>/`` (``~/.cache/dhmd_graph``
    when ``DHMD_CACHE`` is unset) as ``<profile>_<aligned|unaligned>_<train-valid-test>_
    <seed>.pkl``. Arguments as in :func:`write_synthetic_task`.
    """
    spec = profile_named(PROFILES, profile, "write_synthetic_task")
    counts = split_sizes(sizes, spec.sizes, "write_synthetic_task", least=2)
    root = Path(os.environ.get("DHMD_CACHE") or Path.home() / ".cache" / "dhmd_graph")
    name = (f"{spec.name}_{'aligned' if aligned else 'unaligned'}_"
            f"{'-'.join(str(counts[s]) for s in SPLITS)}_{seed}.pkl")
    path = root / "synthetic_tasks" / f"v{GENERATOR_VERSION}" / name
    if not path.is_file():
        write_synthetic_task(path, spec.name, aligned, counts, seed)
    return path
