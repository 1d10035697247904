r"""A synthetic MMSA pickle on which the dynamic graph's routing must matter.

:mod:`~dhmd_graph.data.synthetic` plants at most one *corrupted* modality per sample,
which carries noise and no label information: a model can average it away. Here every
sample has a continuous reliability :math:`\rho_m \in [0, 1]` per modality, an unreliable
modality *misleads* (it points to a wrong label), and which modality is unreliable is
visible in most samples only in the temporal structure of its noise, so a model that
reads pooled features cannot tell whom to trust, and a graph that routes by the sample
can.

**Labels.** :math:`y` follows CMU-MOSEI's train label table (the proportions of
:mod:`~dhmd_graph.data.synthetic`'s MOSEI profile, in every split). Every sample also has
a *distractor label* :math:`y'`, drawn from the same table at least
``distractor_distance`` away from :math:`y`.

**Reliability.** Per sample, one modality :math:`u` (uniform over the three) is the
unreliable one, :math:`\rho_u \sim U(0, 0.3)`; one of the two others (uniform) is an
anchor, :math:`\rho \sim U(0.8, 1)`, so every sample has a reliable modality; the third
has :math:`\rho \sim U(0.3, 1)`. In a fraction ``context_fraction`` (40 %) of the samples a
*visible context* decides :math:`u`: the one-hot code of :math:`u` sits on three code
channels of every modality (say, a scene known to jam the microphone); elsewhere those
channels are zero and :math:`u` shows only in the noise.

**Features.** Per modality :math:`m` a code of ``code_channels`` channels per step,
mapped to ``dims[m]`` features by a fixed random projection :math:`P_m` (per seed):

.. math::
    x_{m,t} = \big(a_m\, [\rho_m \hat{y} + (1 - \rho_m)\, \hat{y}']\, e_0
              + c\, \mathbf{1}_{ctx}\, e_{1 + u}
              + \sqrt{\rho_m}\, \epsilon_{m,t} + \sqrt{1 - \rho_m}\, \delta_{m,t}\big) P_m
              + \eta_{m,t},

with :math:`\hat{y} = y / \sigma_y` (likewise :math:`\hat{y}'`), white step noise
:math:`\epsilon`, *drifting* noise :math:`\delta` (a moving average over ``drift_span``
steps, rescaled to unit variance: the same size as :math:`\epsilon` at every step, but
slowly varying) and white feature noise :math:`\eta`. Every step of a code has the same
marginal variance whatever :math:`\rho_m`; only the noise's temporal structure (how much
consecutive steps differ, how much of it survives pooling) tells :math:`\rho_m`, together
with the context where there is one. Sequences are ``steps`` long, all steps valid.

**Stored fields** (besides MMSA's ``id``, ``text``, ``audio``, ``vision``,
``regression_labels``, ``classification_labels``): ``modality_reliability`` ``(N, 3)``
float32 :math:`\rho` over (text, audio, vision), read by
:func:`~dhmd_graph.data.load_mmsa` into ``dataset.extras``; ``routing_context`` ``(N,)``
int64, :math:`u` where the context is visible and ``-1`` elsewhere; ``distractor_labels``
``(N,)`` float32 :math:`y'`.

Generation is deterministic per ``seed``; :data:`GENERATOR_VERSION` names the cache
folder of :func:`default_routing_dataset_path` and changes whenever the output does.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np

from dhmd_graph.data.synthetic import (  # the shared machinery of the planted generators
    _MOSEI_TABLES,
    MODALITIES,
    PROFILES,
    RELIABILITY_KEY,
    SPLITS,
    _apportion,
    _correlated_noise,
    _label_std,
    _publish,
    _video_ids,
    split_sizes,
)

__all__ = [
    "CONTEXT_KEY",
    "DISTRACTOR_KEY",
    "GENERATOR_VERSION",
    "ROUTING_SIZES",
    "RoutingStructure",
    "default_routing_dataset_path",
    "write_synthetic_routing",
]

GENERATOR_VERSION = 1  # bump when the generated content changes: it names the cache folder
ROUTING_SIZES = {"train": 2000, "valid": 400, "test": 800}
"""The default split sizes: small enough for CPU minutes."""
CONTEXT_KEY = "routing_context"
"""The split key of the ``(N,)`` visible context: the unreliable modality, or -1."""
DISTRACTOR_KEY = "distractor_labels"
"""The split key of the ``(N,)`` distractor labels :math:`y'`."""
_CLIPS_PER_VIDEO = 23453 / 3228  # CMU-MOSEI's


@dataclass(frozen=True)
class RoutingStructure:
    r"""The shape and strengths of :func:`write_synthetic_routing` (see the module
    docstring).

    Args:
        dims (tuple[int, int, int], optional): Feature widths of text, audio, vision.
            (default: ``(48, 24, 16)``)
        steps (int, optional): Sequence length (>= 2). (default: ``20``)
        code_channels (int, optional): Code channels per step (>= 4: the signal and
            the three context channels). (default: ``8``)
        strength (tuple[float, float, float], optional): :math:`a_m`, the signal
            strength of text, audio, vision. (default: ``(1.5, 1.5, 1.5)``)
        context_strength (float, optional): :math:`c`, the size of the visible
            context code. (default: ``1.5``)
        context_fraction (float, optional): The share of samples whose context is
            visible. (default: ``0.4``)
        unreliable_range (tuple[float, float], optional): :math:`\rho_u`'s range.
            (default: ``(0.0, 0.3)``)
        anchor_range (tuple[float, float], optional): The anchor's range.
            (default: ``(0.8, 1.0)``)
        other_range (tuple[float, float], optional): The third modality's range.
            (default: ``(0.3, 1.0)``)
        step_noise_std (float, optional): Std of the code noise (white and drifting
            alike). (default: ``1.0``)
        drift_span (int, optional): Steps of the moving average of the drifting noise.
            (default: ``8``)
        feature_noise_std (float, optional): Std of the white feature noise.
            (default: ``0.5``)
        distractor_distance (float, optional): The least :math:`|y' - y|`.
            (default: ``1.5``)
    """

    dims: tuple[int, int, int] = (48, 24, 16)
    steps: int = 20
    code_channels: int = 8
    strength: tuple[float, float, float] = (1.5, 1.5, 1.5)
    context_strength: float = 1.5
    context_fraction: float = 0.4
    unreliable_range: tuple[float, float] = (0.0, 0.3)
    anchor_range: tuple[float, float] = (0.8, 1.0)
    other_range: tuple[float, float] = (0.3, 1.0)
    step_noise_std: float = 1.0
    drift_span: int = 8
    feature_noise_std: float = 0.5
    distractor_distance: float = 1.5

    def __post_init__(self) -> None:
        name = type(self).__name__
        if len(self.dims) != 3 or min(self.dims) < 1:
            raise ValueError(f"{name}.dims: expected three positive widths (text, audio, "
                             f"vision), found {self.dims}.")
        if self.steps < 2 or self.drift_span < 1:
            raise ValueError(f"{name}: steps must be >= 2 and drift_span >= 1, found "
                             f"{self.steps} and {self.drift_span}.")
        if self.code_channels < 4:
            raise ValueError(f"{name}.code_channels: expected >= 4 (the signal and three "
                             f"context channels), found {self.code_channels}.")
        if not 0 <= self.context_fraction <= 1:
            raise ValueError(f"{name}.context_fraction: expected a share in [0, 1], found "
                             f"{self.context_fraction}.")
        for field in ("unreliable_range", "anchor_range", "other_range"):
            low, high = getattr(self, field)
            if not 0 <= low <= high <= 1:
                raise ValueError(f"{name}.{field}: expected 0 <= low <= high <= 1, found "
                                 f"{(low, high)}.")
        if not 0 < self.distractor_distance < 6:
            raise ValueError(f"{name}.distractor_distance: expected a distance in (0, 6) "
                             f"(labels lie in [-3, 3]), found {self.distractor_distance}.")


def _distractors(labels: np.ndarray, table: Mapping[float, float], distance: float,
                 rng: np.random.Generator) -> np.ndarray:
    """``(n,)`` labels drawn from ``table``, each at least ``distance`` from its label."""
    values = np.array(list(table), dtype=np.float64)
    weights = np.array(list(table.values()), dtype=np.float64)
    far = np.abs(values[None, :] - labels[:, None]) >= distance  # (n, V)
    probability = far * weights[None, :]
    probability /= probability.sum(axis=1, keepdims=True)
    draw = rng.random(len(labels))[:, None]
    index = (probability.cumsum(axis=1) < draw).sum(axis=1)  # inverse CDF
    return values[np.minimum(index, len(values) - 1)]


def _reliability(n: int, structure: RoutingStructure, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 3)`` reliabilities and ``(n,)`` the unreliable modality of every sample."""
    unreliable = rng.integers(0, 3, n)
    anchor = (unreliable + rng.integers(1, 3, n)) % 3  # one of the two others
    third = 3 - unreliable - anchor
    reliability = np.empty((n, 3))
    rows = np.arange(n)
    for columns, (low, high) in ((unreliable, structure.unreliable_range),
                                 (anchor, structure.anchor_range),
                                 (third, structure.other_range)):
        reliability[rows, columns] = rng.uniform(low, high, n)
    return reliability, unreliable


def _routing_split(n: int, projections: Mapping[str, np.ndarray], structure: RoutingStructure,
                   label_std: float, rng: np.random.Generator) -> dict:
    """One split as a dict of MMSA arrays (see the module docstring)."""
    table = _MOSEI_TABLES["train"]
    labels = _apportion(table, n, rng)  # (n,)
    distractor = _distractors(labels, table, structure.distractor_distance, rng)  # (n,)
    reliability, unreliable = _reliability(n, structure, rng)  # (n, 3), (n,)
    visible = rng.random(n) < structure.context_fraction  # (n,)
    steps = structure.steps
    data = {}
    for m, name in enumerate(MODALITIES):
        rho = reliability[:, m]  # (n,)
        code = np.zeros((n, steps, structure.code_channels), dtype=np.float32)
        mixed = (rho * labels + (1 - rho) * distractor) / label_std  # (n,)
        code[:, :, 0] = (structure.strength[m] * mixed)[:, None]
        code[visible, :, 1 + unreliable[visible]] = structure.context_strength
        white = _correlated_noise(rng, code.shape, 1)  # (n, T, k) unit variance
        drift = _correlated_noise(rng, code.shape, structure.drift_span)
        code += structure.step_noise_std * (np.sqrt(rho)[:, None, None] * white
                                            + np.sqrt(1 - rho)[:, None, None] * drift)
        features = code @ projections[name]  # (n, T, d_m)
        features += structure.feature_noise_std * rng.standard_normal(features.shape,
                                                                      dtype=np.float32)
        data[name] = features.astype(np.float32)
    classes = np.sign(labels).astype(np.int64) + 1  # 0 negative, 1 neutral, 2 positive
    return {
        "id": _video_ids(n, _CLIPS_PER_VIDEO, rng),
        **data,
        "regression_labels": labels.astype(np.float32),
        "classification_labels": classes.astype(np.float32),
        RELIABILITY_KEY: reliability.astype(np.float32),
        CONTEXT_KEY: np.where(visible, unreliable, -1).astype(np.int64),
        DISTRACTOR_KEY: distractor.astype(np.float32),
    }


def write_synthetic_routing(path: str | PathLike, sizes: Mapping[str, int] | None = None,
                            seed: int = 0, *, structure: RoutingStructure | None = None
                            ) -> Path:
    r"""Write the routing pickle (see the module docstring), atomically.

    Args:
        path (str or PathLike): The ``.pkl`` file to write (parent folders are created).
        sizes (Mapping[str, int], optional): Samples per split, keys ``'train'``,
            ``'valid'``, ``'test'``; :obj:`None` uses :data:`ROUTING_SIZES`.
            (default: :obj:`None`)
        seed (int, optional): Everything drawn follows from it. (default: ``0``)
        structure (RoutingStructure, optional): Shapes and strengths; :obj:`None` uses
            the defaults. (default: :obj:`None`)

    Returns:
        Path: ``path``, for :func:`~dhmd_graph.data.load_mmsa`.

    Raises:
        ValueError: Bad ``sizes``.
    """
    counts = split_sizes(sizes, ROUTING_SIZES, "write_synthetic_routing")
    structure = structure or RoutingStructure()
    rng = np.random.default_rng([seed, 0])
    projections = {name: (rng.standard_normal((structure.code_channels, dim))
                          / np.sqrt(structure.code_channels)).astype(np.float32)
                   for name, dim in zip(MODALITIES, structure.dims, strict=True)}
    label_std = _label_std(PROFILES["mosei"])  # of the train table the labels follow
    data = {split: _routing_split(n, projections, structure, label_std,
                                  np.random.default_rng([seed, 1 + index]))
            for index, (split, n) in enumerate(counts.items())}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as scratch:
        _publish(data, Path(scratch), path)
    return path


def default_routing_dataset_path(sizes: Mapping[str, int] | None = None, seed: int = 0
                                 ) -> Path:
    r"""The cached routing dataset for these arguments (default structure), generated on
    first use, in ``$DHMD_CACHE/synthetic_routing/v<version>/`` (``~/.cache/dhmd_graph``
    when ``DHMD_CACHE`` is unset) as ``routing_<train-valid-test>_<seed>.pkl``."""
    counts = split_sizes(sizes, ROUTING_SIZES, "write_synthetic_routing")
    root = Path(os.environ.get("DHMD_CACHE") or Path.home() / ".cache" / "dhmd_graph")
    name = f"routing_{'-'.join(str(counts[s]) for s in SPLITS)}_{seed}.pkl"
    path = root / "synthetic_routing" / f"v{GENERATOR_VERSION}" / name
    if not path.is_file():
        write_synthetic_routing(path, counts, seed)
    return path
