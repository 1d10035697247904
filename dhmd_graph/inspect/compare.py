r"""Two finished runs side by side: per-seed metrics, mean ± std, and a paired test.

:func:`compare_runs` is what ``dhmd compare RUN_A RUN_B`` does. It reads the record every
finished seed of each run wrote (``seed_<s>/metrics.json``: the selected epoch and its
validation and test metrics), matches the two runs' seeds, and per metric gives

- each run's value per seed, and its mean ± standard deviation over its seeds (the
  population standard deviation, as ``results.json`` and ``dhmd train`` print it);
- the difference ``B − A`` over the **shared** seeds with a two-sided paired test
  (:func:`paired_test`): Student's paired t-test and the exact sign-flip (permutation)
  test, which assumes nothing about the differences' distribution.

A seed fixes a run's initialisation and batch order, so the same seed in both runs is a
pair: comparing them removes the seed-to-seed spread the two runs share. When the runs
have no seed in common there is no pair, and Welch's unpaired t-test is given instead.
The comparison says in words (:attr:`RunComparison.notes`) what limits it: seeds that do
not match, too few seeds for a test to reach p < 0.05, runs trained on different data or
under another protocol, metrics only one run has.

Example:

.. code-block:: python

    from dhmd_graph.inspect.compare import compare_runs, format_comparison

    comparison = compare_runs("runs/dmd", "runs/dhmd")          # test metrics
    print(format_comparison(comparison))
    mae = comparison.metric("MAE")
    mae.difference.mean, mae.difference.p_t                       # B − A, paired
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from dhmd_graph.errors import ConfigError, RunFolderError, UserError
from dhmd_graph.metrics import metric_direction
from dhmd_graph.train.run_folder import RunFolder, SeedFolder

__all__ = [
    "EXACT_SIGN_FLIP_PAIRS",
    "MetricComparison",
    "PairedTest",
    "RunComparison",
    "UnpairedTest",
    "compare_runs",
    "format_comparison",
    "paired_test",
    "read_seed_metrics",
    "unpaired_test",
]

SPLITS = ("valid", "test")
EXACT_SIGN_FLIP_PAIRS = 16
"""Up to this many pairs the sign-flip test enumerates all :math:`2^n` sign patterns;
beyond, it draws :math:`2^{16}` of them at random (with a fixed seed)."""
_SAME = 1e-12  # differences closer than this count as equal (ties in the sign-flip test)


class PairedTest(NamedTuple):
    r"""A two-sided paired test of ``B − A`` over ``n`` pairs.

    Attributes:
        n (int): The number of pairs (shared seeds).
        mean (float): :math:`\bar d`, the mean difference ``B − A``.
        std (float): The sample standard deviation of the differences (``ddof=1``;
            ``nan`` for one pair).
        t (float): :math:`t = \bar d / (s_d / \sqrt n)`; ``nan`` when undefined.
        p_t (float): Its two-sided p-value, Student's t with :math:`n - 1` degrees of
            freedom; ``nan`` for fewer than two pairs or differences that are all equal.
        p_sign_flip (float): The exact two-sided sign-flip p-value: the share of the
            :math:`2^n` ways to flip the differences' signs whose mean is at least as far
            from zero as :math:`\bar d` (``nan`` for fewer than two pairs).
        min_p_sign_flip (float): The smallest p-value the sign-flip test can give with
            ``n`` pairs, :math:`2 / 2^n` (0.25 for three seeds).
    """

    n: int
    mean: float
    std: float
    t: float
    p_t: float
    p_sign_flip: float
    min_p_sign_flip: float


class UnpairedTest(NamedTuple):
    r"""Welch's two-sided unpaired t-test of ``mean(B) − mean(A)`` (no shared seeds).

    Attributes:
        mean (float): ``mean(B) − mean(A)``.
        t (float): Welch's :math:`t`; ``nan`` when undefined.
        p_t (float): Its two-sided p-value (Welch–Satterthwaite degrees of freedom);
            ``nan`` with fewer than two seeds in a run or no spread in either.
    """

    mean: float
    t: float
    p_t: float


def _sign_flip_p(differences: np.ndarray) -> float:
    """The two-sided sign-flip p-value of the mean of ``differences`` ``(n,)``."""
    n = len(differences)
    if n <= EXACT_SIGN_FLIP_PAIRS:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))  # (2^n, n)
    else:
        signs = np.random.default_rng(0).choice((1.0, -1.0), size=(2**16, n))
    observed = abs(differences.mean())
    flipped = np.abs(signs @ differences / n)  # (2^n,)
    return float(np.mean(flipped >= observed - _SAME))


def paired_test(a: Sequence[float], b: Sequence[float]) -> PairedTest:
    r"""The two-sided paired t-test and sign-flip test of ``b − a``.

    Args:
        a (Sequence[float]): ``(n,)`` run A's values, one per pair.
        b (Sequence[float]): ``(n,)`` run B's values, in the same order.

    Returns:
        PairedTest: ``nan`` p-values where a test is undefined (fewer than two pairs;
        for the t-test also differences that are all equal).
    """
    from scipy import stats

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise UserError(f"paired_test: expected two sequences of the same length, found "
                        f"shapes {a.shape} and {b.shape}; pass one value per shared seed")
    differences = b - a  # (n,)
    n = len(differences)
    nan = float("nan")
    mean = float(differences.mean()) if n else nan
    if n < 2:
        return PairedTest(n, mean, nan, nan, nan, nan, 2.0 / 2**n if n else nan)
    std = float(differences.std(ddof=1))
    if std <= _SAME * max(1.0, abs(mean)):
        t = p_t = nan  # the t statistic is 0/0 or ±inf: undefined, not "certain"
    else:
        t = mean / (std / math.sqrt(n))
        p_t = float(2.0 * stats.t.sf(abs(t), df=n - 1))
    return PairedTest(n, mean, std, float(t), p_t, _sign_flip_p(differences),
                      min(1.0, 2.0 / 2**n))


def unpaired_test(a: Sequence[float], b: Sequence[float]) -> UnpairedTest:
    """Welch's two-sided t-test of ``mean(b) − mean(a)`` (see :class:`UnpairedTest`)."""
    from scipy import stats

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    mean = float(b.mean() - a.mean()) if a.size and b.size else float("nan")
    if a.size < 2 or b.size < 2 or (a.std() == 0 and b.std() == 0):
        return UnpairedTest(mean, float("nan"), float("nan"))
    result = stats.ttest_ind(b, a, equal_var=False)
    return UnpairedTest(mean, float(result.statistic), float(result.pvalue))


class MetricComparison(NamedTuple):
    r"""One metric of two runs.

    Attributes:
        metric (str): Its name, e.g. ``"MAE"``.
        direction (str or None): ``"min"`` (smaller is better), ``"max"``, or
            :obj:`None` where the name does not say
            (:func:`~dhmd_graph.metrics.metric_direction`).
        a (dict[int, float]): Run A's value per seed, in seed order.
        b (dict[int, float]): Run B's value per seed.
        difference (PairedTest or None): ``B − A`` over the shared seeds;
            :obj:`None` when the runs share no seed.
        unpaired (UnpairedTest or None): Welch's test, only when they share no seed.
    """

    metric: str
    direction: str | None
    a: dict[int, float]
    b: dict[int, float]
    difference: PairedTest | None
    unpaired: UnpairedTest | None

    @property
    def mean_a(self) -> float:
        return float(np.mean(list(self.a.values())))

    @property
    def mean_b(self) -> float:
        return float(np.mean(list(self.b.values())))

    @property
    def std_a(self) -> float:
        """Population standard deviation over A's seeds (as ``results.json``)."""
        return float(np.std(list(self.a.values())))

    @property
    def std_b(self) -> float:
        return float(np.std(list(self.b.values())))

    @property
    def better(self) -> str:
        """``"A"``, ``"B"`` or ``"="`` by the means and the metric's direction; ``"?"``
        when the direction is unknown."""
        if self.direction is None:
            return "?"
        gap = self.mean_b - self.mean_a
        if abs(gap) <= _SAME:
            return "="
        return "B" if (gap < 0) == (self.direction == "min") else "A"


@dataclass(frozen=True)
class RunComparison:
    r"""Two runs' metrics on one split, metric by metric (:func:`compare_runs`).

    Attributes:
        run_a (Path), run_b (Path): The run folders.
        split (str): ``"test"`` or ``"valid"``.
        seeds_a (tuple[int, ...]), seeds_b (tuple[int, ...]): Each run's finished seeds.
        shared (tuple[int, ...]): The seeds both finished: the pairs of the test.
        metrics (tuple[MetricComparison, ...]): The metrics both runs have, in run A's
            order.
        notes (tuple[str, ...]): What limits the comparison, in sentences.
    """

    run_a: Path
    run_b: Path
    split: str
    seeds_a: tuple[int, ...]
    seeds_b: tuple[int, ...]
    shared: tuple[int, ...]
    metrics: tuple[MetricComparison, ...]
    notes: tuple[str, ...]

    def metric(self, name: str) -> MetricComparison:
        """The comparison of the metric ``name``.

        Raises:
            UserError: Neither run, or only one, has the metric.
        """
        for row in self.metrics:
            if row.metric == name:
                return row
        raise UserError(f"metric {name!r}: the compared runs share the metrics "
                        f"{[row.metric for row in self.metrics]}; choose one of them")

    def to_dict(self) -> dict:
        """The comparison as JSON-ready data (``nan`` stays ``nan``)."""
        return {
            "run_a": str(self.run_a), "run_b": str(self.run_b), "split": self.split,
            "seeds_a": list(self.seeds_a), "seeds_b": list(self.seeds_b),
            "shared_seeds": list(self.shared), "notes": list(self.notes),
            "metrics": {
                row.metric: {
                    "direction": row.direction, "better": row.better,
                    "a": {str(s): v for s, v in row.a.items()},
                    "b": {str(s): v for s, v in row.b.items()},
                    "mean_a": row.mean_a, "std_a": row.std_a,
                    "mean_b": row.mean_b, "std_b": row.std_b,
                    "paired": None if row.difference is None else row.difference._asdict(),
                    "unpaired": None if row.unpaired is None else row.unpaired._asdict(),
                }
                for row in self.metrics
            },
        }


def read_seed_metrics(run_dir: str | os.PathLike, split: str = "test"
                      ) -> tuple[dict[int, dict[str, float]], list[int]]:
    r"""Every finished seed's metrics of ``split`` in a run folder.

    Args:
        run_dir (str or PathLike): A folder written by ``dhmd train``.
        split (str, optional): ``"test"`` or ``"valid"`` (the selected epoch's).
            (default: ``"test"``)

    Returns:
        tuple: ``{seed: {metric: value}}`` in seed order, and the seeds that have a
        folder but no ``metrics.json`` yet (unfinished).

    Raises:
        RunFolderError: ``run_dir`` is no run folder or has no finished seed.
    """
    if split not in SPLITS:
        raise UserError(f"split {split!r}: a run's seed records hold the metrics of "
                        f"{list(SPLITS)}; choose one of them with --split")
    run = RunFolder(run_dir)
    run.read_config()  # says clearly when this is no run folder
    finished, unfinished = {}, []
    for seed in run.seeds():
        folder: SeedFolder = run.seed(seed)
        if not folder.metrics.is_file():
            unfinished.append(seed)
            continue
        record = folder.read_metrics()
        values = record.get(split)
        if not isinstance(values, dict):
            raise RunFolderError(f"'{folder.metrics}' has no {split!r} metrics; delete it to "
                                 "run the seed's test again with dhmd train --resume")
        finished[seed] = {str(k): float(v) for k, v in values.items()
                          if isinstance(v, (int, float))}
    if not finished:
        raise RunFolderError(
            f"no finished seed in '{run.path}': no seed_<s>/metrics.json"
            + (f" (seeds {unfinished} are unfinished)" if unfinished else "")
            + f"; finish the run with dhmd train --out {run.path} --resume")
    return finished, unfinished


def _direction(metric: str) -> str | None:
    try:
        return metric_direction(metric)
    except ConfigError:
        return None


def _seed_list(seeds: Sequence[int]) -> str:
    return ", ".join(map(str, seeds)) if seeds else "none"


def _config_notes(run_a: RunFolder, run_b: RunFolder) -> list[str]:
    """Sentences for runs whose data or protocol differ (their metrics may not compare)."""
    a, b = run_a.read_config(), run_b.read_config()
    notes = []
    for key, what in (("data", "dataset"), ("preset", "protocol (preset)"),
                      ("aligned", "alignment")):
        if a.get(key) != b.get(key):
            notes.append(f"The runs differ in their {what}: A {a.get(key)!r}, B "
                         f"{b.get(key)!r}; their metrics may not measure the same thing.")
    task_a, task_b = ((c.get("model") or {}).get("task") for c in (a, b))
    if task_a != task_b:
        notes.append(f"The runs solve different tasks (A {task_a!r}, B {task_b!r}).")
    return notes


def compare_runs(run_a: str | os.PathLike, run_b: str | os.PathLike, *, split: str = "test",
                 metrics: Sequence[str] | None = None) -> RunComparison:
    r"""Compares the finished seeds of two runs on one split, metric by metric.

    Args:
        run_a (str or PathLike): The first run folder (the baseline: differences are
            ``B − A``).
        run_b (str or PathLike): The second run folder.
        split (str, optional): ``"test"`` or ``"valid"``. (default: ``"test"``)
        metrics (Sequence[str], optional): Only these metrics; :obj:`None` means every
            metric both runs have. (default: :obj:`None`)

    Returns:
        RunComparison: With notes on what limits the comparison.

    Raises:
        RunFolderError: A folder is no run or has no finished seed.
        UserError: A bad split, a metric not in both runs, or no metric in common.
    """
    folders = RunFolder(run_a), RunFolder(run_b)
    (values_a, open_a), (values_b, open_b) = (read_seed_metrics(f.path, split) for f in folders)
    names_a = list(dict.fromkeys(k for v in values_a.values() for k in v))
    names_b = {k for v in values_b.values() for k in v}
    common = [name for name in names_a if name in names_b
              and all(name in v for v in values_a.values())
              and all(name in v for v in values_b.values())]
    if metrics is not None:
        missing = [name for name in metrics if name not in common]
        if missing:
            raise UserError(f"--metrics: {missing} are not {split} metrics of every seed of "
                            f"both runs; they share {common}")
        common = list(dict.fromkeys(metrics))
    if not common:
        raise UserError(f"'{folders[0].path}' and '{folders[1].path}' share no {split} metric "
                        f"(A has {names_a}, B has {sorted(names_b)}); compare runs of one "
                        "task")
    seeds_a, seeds_b = tuple(values_a), tuple(values_b)
    shared = tuple(s for s in seeds_a if s in values_b)
    notes = _config_notes(*folders)
    if folders[0].path.resolve() == folders[1].path.resolve():
        notes.append("A and B are the same run folder.")
    for label, folder, unfinished in (("A", folders[0], open_a), ("B", folders[1], open_b)):
        if unfinished:
            notes.append(f"Run {label} ('{folder.path}') has unfinished seeds "
                         f"{_seed_list(unfinished)}, left out.")
    only_a = [s for s in seeds_a if s not in values_b]
    only_b = [s for s in seeds_b if s not in values_a]
    if not shared:
        notes.append(f"The runs share no seed (A {_seed_list(seeds_a)}, B "
                     f"{_seed_list(seeds_b)}): no paired test. Welch's unpaired t-test is "
                     "given instead; it must also absorb the seed-to-seed spread. Train both "
                     "runs with the same --seeds for a paired comparison.")
    elif only_a or only_b:
        notes.append(f"The seeds do not match: only in A {_seed_list(only_a)}, only in B "
                     f"{_seed_list(only_b)}. The paired test uses the {len(shared)} shared "
                     f"seed(s) {_seed_list(shared)}; mean ± std use each run's own seeds.")
    if len(shared) == 1:
        notes.append("One shared seed: too few for any test (a paired test needs at least 2 "
                     "pairs, the sign-flip test 6 to reach p < 0.05).")
    elif 2 <= len(shared) <= 5:
        notes.append(f"With {len(shared)} shared seeds the sign-flip test cannot go below "
                     f"p = {2.0 / 2 ** len(shared):.3g}, and the t-test's normality cannot be "
                     "checked on so few differences: treat either p as a rough guide, and a "
                     "difference within the seeds' spread as no difference.")
    extra = sorted((set(names_a) | names_b) - set(common))
    if extra and metrics is None:
        notes.append(f"Metrics not in every seed of both runs are left out: {extra}.")
    if split == "valid":
        notes.append("Validation metrics selected each seed's checkpoint, so they are "
                     "optimistic; compare test metrics for the final word.")
    rows = []
    for name in common:
        a = {s: values_a[s][name] for s in seeds_a}
        b = {s: values_b[s][name] for s in seeds_b}
        paired = (paired_test([a[s] for s in shared], [b[s] for s in shared])
                  if shared else None)
        unpaired = None if shared else unpaired_test(list(a.values()), list(b.values()))
        rows.append(MetricComparison(name, _direction(name), a, b, paired, unpaired))
    return RunComparison(folders[0].path, folders[1].path, split, seeds_a, seeds_b, shared,
                         tuple(rows), tuple(notes))


def _number(value: float, decimals: int = 4) -> str:
    return "nan" if math.isnan(value) else f"{value:.{decimals}f}"


def _p(value: float) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:.3f}" if value >= 0.001 else "<0.001"


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table: left-aligned columns two spaces apart, a rule under the header."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
             .rstrip() for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def format_comparison(comparison: RunComparison, *, decimals: int = 4) -> str:
    r"""The comparison as text: the runs, a per-seed table, a summary table and the notes.

    The summary has per metric each run's mean ± std over its seeds, ``B − A`` over the
    shared seeds (mean ± sample std), the paired t-test's and the sign-flip test's
    p-values (Welch's p where no seed is shared), and which run is better by the means.
    """
    c = comparison
    lines = [f"{c.split} metrics, B − A over the shared seeds",
             f"A: {c.run_a} (seeds {_seed_list(c.seeds_a)})",
             f"B: {c.run_b} (seeds {_seed_list(c.seeds_b)})", ""]
    seeds = sorted(set(c.seeds_a) | set(c.seeds_b))
    per_seed = []
    for row in c.metrics:
        for seed in seeds:
            a, b = row.a.get(seed), row.b.get(seed)
            per_seed.append([row.metric if seed == seeds[0] else "", str(seed),
                             "-" if a is None else _number(a, decimals),
                             "-" if b is None else _number(b, decimals),
                             _number(b - a, decimals) if a is not None and b is not None
                             else "-"])
    lines += [text_table(["metric", "seed", "A", "B", "B − A"], per_seed), ""]
    summary = []
    for row in c.metrics:
        test = row.difference
        if test is not None:
            spread = "" if math.isnan(test.std) else f" ± {_number(test.std, decimals)}"
            difference = f"{_number(test.mean, decimals)}{spread}"
            p_t, p_flip = _p(test.p_t), _p(test.p_sign_flip)
        else:
            difference = f"{_number(row.unpaired.mean, decimals)} (unpaired)"
            p_t, p_flip = f"{_p(row.unpaired.p_t)} (Welch)", "-"
        direction = {"min": "lower", "max": "higher"}.get(row.direction, "?")
        summary.append([row.metric, direction,
                        f"{_number(row.mean_a, decimals)} ± {_number(row.std_a, decimals)}",
                        f"{_number(row.mean_b, decimals)} ± {_number(row.std_b, decimals)}",
                        difference, p_t, p_flip, row.better])
    lines += [text_table(["metric", "better is", "A mean ± std", "B mean ± std", "B − A",
                          "p (paired t)", "p (sign flip)", "better (means)"], summary)]
    lines += ["", "mean ± std: over each run's seeds (population std, as results.json); B − A: "
              "mean ± sample std of the per-seed differences over the shared seeds; p: "
              "two-sided, '-' where the test is undefined (fewer than 2 pairs, or the same "
              "difference in every pair)."]
    lines += [f"note: {note}" for note in c.notes]
    return "\n".join(lines)

