"""MMSA-exact metrics: hand-computed cases, edge cases, and an independent reimplementation."""

import math

import numpy as np
import pytest
import torch

from dhmd_graph.metrics import (
    REGRESSION_KEYS,
    SIMS_KEYS,
    format_table,
    metrics_for,
    regression_metrics,
    sims_metrics,
)

# ---------------------------------------------------------------- hand-computed examples

# Labels 2.5 / -2.5 round half to even (2 / -2); 3.2 clips to 3 (acc7) and 2 (acc5).
LABEL = [2.5, -2.5, 0.0, 1.4, -0.6, 3.2]
PRED = [2.4, -1.6, 0.3, -0.2, -0.5, 2.4]


def test_regression_worked_example():
    got = regression_metrics(PRED, LABEL)
    assert list(got) == list(REGRESSION_KEYS)
    # Has0: p>=0 [T,F,T,F,F,T] vs y>=0 [T,F,T,T,F,T] -> 5/6.
    assert got["Has0_acc_2"] == 0.8333
    # True (support 4): P=1, R=3/4, F1=6/7; False (support 2): P=2/3, R=1, F1=4/5.
    assert got["Has0_F1_score"] == round((4 * 6 / 7 + 2 * 0.8) / 6, 4) == 0.8381
    # Non0 drops y == 0: p>0 [T,F,F,F,T] vs y>0 [T,F,T,F,T] -> 4/5; both classes F1 = 0.8.
    assert got["Non0_acc_2"] == 0.8
    assert got["Non0_F1_score"] == 0.8
    # acc7: y -> [2,-2,0,1,-1,3], p -> [2,-2,0,-0,-0,2]: 3/6 (half away from zero: 1/6).
    assert got["Mult_acc_7"] == 0.5
    # acc5: y -> [2,-2,0,1,-1,2], p -> [2,-2,0,-0,-0,2]: 4/6.
    assert got["Mult_acc_5"] == 0.6667
    # |p - y| = .1 .9 .3 1.6 .1 .8 -> 3.8 / 6.
    assert got["MAE"] == 0.6333
    p, y = np.array(PRED), np.array(LABEL)
    pc, yc = p - p.mean(), y - y.mean()
    assert got["Corr"] == round(float(pc @ yc / math.sqrt((pc @ pc) * (yc @ yc))), 4)


def test_regression_perfect_and_affine_prediction():
    label = np.array([-3.0, -1.2, 0.0, 0.4, 2.0])
    got = regression_metrics(label, label)
    assert got == {**dict.fromkeys(REGRESSION_KEYS, 1.0), "MAE": 0.0}
    assert regression_metrics(2 * label + 0.1, label)["Corr"] == 1.0
    assert regression_metrics(-label, label)["Corr"] == -1.0


def test_half_labels_round_to_even():
    # 0.5 -> 0, 1.5 -> 2, -0.5 -> -0, -1.5 -> -2, 2.5 -> 2 (acc7).
    label = np.array([0.5, 1.5, -0.5, -1.5, 2.5])
    pred = np.array([0.0, 2.0, 0.0, -2.0, 2.0])
    assert regression_metrics(pred, label)["Mult_acc_7"] == 1.0
    assert regression_metrics(pred + 1.0, label)["Mult_acc_7"] == 0.0


def test_constant_prediction_has_nan_corr_and_no_warning():
    label = [1.0, -1.0, 2.0, 0.0]
    got = regression_metrics(np.full(4, 0.5), label)  # warnings are errors in this suite
    assert math.isnan(got["Corr"])
    assert got["Has0_acc_2"] == 0.75
    # True (support 3): P=3/4, R=1, F1=6/7; False (support 1): never predicted, F1=0.
    assert got["Has0_F1_score"] == round(0.75 * 6 / 7, 4)
    assert math.isnan(sims_metrics(np.zeros(3), [0.2, -0.4, 1.0])["Corr"])


def test_all_zero_labels_give_nan_non0():
    got = regression_metrics([0.1, -0.2, 0.0], np.zeros(3))
    assert math.isnan(got["Non0_acc_2"]) and math.isnan(got["Non0_F1_score"])
    assert math.isnan(got["Corr"])  # constant label
    assert got["Has0_acc_2"] == 0.6667
    assert got["Has0_F1_score"] == 0.8  # only the True class has support: P=1, R=2/3
    assert got["Mult_acc_7"] == 1.0
    assert got["MAE"] == 0.1


def test_single_sample():
    got = regression_metrics([1.0], [2.0])
    assert math.isnan(got["Corr"]) and got["MAE"] == 1.0 and got["Has0_acc_2"] == 1.0


def test_sims_worked_example():
    label = [-1.0, -0.6, 0.0, 0.2, 0.8, 1.0]
    pred = [-1.3, -0.1, 0.1, 0.0, 0.7, 0.75]  # -1.3 clips to -1
    got = sims_metrics(pred, label)
    assert list(got) == list(SIMS_KEYS)
    # 2 classes (<= 0 | > 0): y [0,0,0,1,1,1], p [0,0,1,0,1,1].
    assert got["Mult_acc_2"] == 0.6667
    assert got["F1_score"] == 0.6667  # each class: P = R = 2/3
    # 3 classes, right-closed: y [0,0,1,2,2,2], p [0,0,1,1,2,2] (-0.1 -> 0, 0.1 -> 1).
    assert got["Mult_acc_3"] == 0.8333
    # 5 classes: y [0,1,2,3,4,4], p [0,1,2,2,3,4] (0.7 -> 3).
    assert got["Mult_acc_5"] == 0.6667
    # MAE on clipped values: 0 .5 .1 .2 .1 .25 -> 1.15 / 6.
    assert got["MAE"] == 0.1917


@pytest.mark.parametrize(
    "pred, label, key, expected",
    [
        (0.0, -0.2, "Mult_acc_2", 1.0),  # 0 is in the lower 2-class bin
        (1e-9, 0.0, "Mult_acc_2", 0.0),
        (-0.1, -0.5, "Mult_acc_3", 1.0),  # -0.1 is in (-1.01, -0.1]
        (0.1, 0.0, "Mult_acc_3", 1.0),  # 0.1 is in (-0.1, 0.1]
        (0.1 + 1e-9, 0.0, "Mult_acc_3", 0.0),
        (-0.7, -1.0, "Mult_acc_5", 1.0),  # -0.7 is in (-1.01, -0.7]
        (0.7, 0.4, "Mult_acc_5", 1.0),  # 0.7 is in (0.1, 0.7]
        (0.7 + 1e-9, 1.0, "Mult_acc_5", 1.0),
        (5.0, 1.0, "Mult_acc_5", 1.0),  # clipped to 1
    ],
)
def test_sims_bins_are_right_closed(pred, label, key, expected):
    assert sims_metrics([pred], [label])[key] == expected


def test_sims_compares_in_the_input_dtype():
    # As in MMSA, which receives float32 tensors: float32 0.1 is in (-0.1, 0.1].
    pred, label = np.float32([0.1]), np.float32([0.2])
    assert sims_metrics(pred, label)["Mult_acc_3"] == 0.0
    assert sims_metrics(torch.tensor([0.1]), torch.tensor([0.0]))["Mult_acc_3"] == 1.0


def test_tensor_input_and_rounding_switch():
    pred, label = torch.tensor([[0.3], [-1.0], [2.2]]), torch.tensor([0.2, -1.1, 1.0])
    assert regression_metrics(pred, label) == regression_metrics(pred.numpy(), label.numpy())
    exact = regression_metrics([0.123456, 1.0], [0.0, 1.0], decimals=None)
    assert exact["MAE"] == pytest.approx(0.123456 / 2, abs=1e-15)


def test_bad_input_raises():
    with pytest.raises(ValueError, match="differ in size"):
        regression_metrics([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="empty"):
        sims_metrics([], [])
    with pytest.raises(ValueError, match="unknown dataset kind 'meld'"):
        metrics_for("meld")


def test_metrics_for():
    assert metrics_for("MOSI") is regression_metrics
    assert metrics_for("mosei") is regression_metrics
    assert metrics_for("sims") is sims_metrics


def test_format_table():
    table = format_table({"valid": {"MAE": 0.5, "Corr": float("nan")}, "test": {"MAE": 0.25}})
    header, valid, test = table.splitlines()
    assert header.split() == ["MAE", "Corr"]
    assert valid.split() == ["valid", "0.5000", "nan"]
    assert test.split() == ["test", "0.2500", "-"]


# ------------------------------------------------- independent straightforward reimplementation


def _f1_weighted(truth, pred):
    total = 0.0
    for c in set(truth) | set(pred):
        tp = sum(t == c and q == c for t, q in zip(truth, pred, strict=True))
        fp = sum(t != c and q == c for t, q in zip(truth, pred, strict=True))
        fn = sum(t == c and q != c for t, q in zip(truth, pred, strict=True))
        f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        total += f1 * sum(t == c for t in truth)
    return total / len(truth)


def _pearson(p, y):
    mp, my = sum(p) / len(p), sum(y) / len(y)
    cov = sum((a - mp) * (b - my) for a, b in zip(p, y, strict=True))
    vp, vy = sum((a - mp) ** 2 for a in p), sum((b - my) ** 2 for b in y)
    return cov / math.sqrt(vp * vy)


def _reference_regression(p, y):
    clip = lambda v, c: max(-c, min(c, v))  # noqa: E731
    non0 = [(a, b) for a, b in zip(p, y, strict=True) if b != 0]
    return {
        "Has0_acc_2": sum((a >= 0) == (b >= 0) for a, b in zip(p, y, strict=True)) / len(y),
        "Has0_F1_score": _f1_weighted([b >= 0 for b in y], [a >= 0 for a in p]),
        "Non0_acc_2": sum((a > 0) == (b > 0) for a, b in non0) / len(non0),
        "Non0_F1_score": _f1_weighted([b > 0 for _, b in non0], [a > 0 for a, _ in non0]),
        "Mult_acc_5": sum(round(clip(a, 2)) == round(clip(b, 2)) for a, b in zip(p, y, strict=True)) / len(y),
        "Mult_acc_7": sum(round(clip(a, 3)) == round(clip(b, 3)) for a, b in zip(p, y, strict=True)) / len(y),
        "MAE": sum(abs(a - b) for a, b in zip(p, y, strict=True)) / len(y),
        "Corr": _pearson(p, y),
    }


def _reference_sims(p, y):
    p = [max(-1.0, min(1.0, a)) for a in p]
    y = [max(-1.0, min(1.0, b)) for b in y]

    def cls(v, edges):
        return next(i for i in range(len(edges) - 1) if edges[i] < v <= edges[i + 1])

    e2, e3, e5 = [-1.01, 0.0, 1.01], [-1.01, -0.1, 0.1, 1.01], [-1.01, -0.7, -0.1, 0.1, 0.7, 1.01]
    acc = lambda e: sum(cls(a, e) == cls(b, e) for a, b in zip(p, y, strict=True)) / len(y)  # noqa: E731
    return {
        "Mult_acc_2": acc(e2),
        "Mult_acc_3": acc(e3),
        "Mult_acc_5": acc(e5),
        "F1_score": _f1_weighted([cls(b, e2) for b in y], [cls(a, e2) for a in p]),
        "MAE": sum(abs(a - b) for a, b in zip(p, y, strict=True)) / len(y),
        "Corr": _pearson(p, y),
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_regression_matches_reference_on_random_data(seed):
    rng = np.random.default_rng(seed)
    label = rng.choice(np.arange(-18, 19) / 6, size=300)  # thirds and halves, with zeros
    pred = np.concatenate([rng.normal(0, 1.5, 280), rng.choice([-2.5, -0.5, 0.0, 0.5, 2.5], 20)])
    got = regression_metrics(pred, label, decimals=None)
    want = _reference_regression(pred.tolist(), label.tolist())
    assert got == pytest.approx(want, abs=1e-12)
    rounded = regression_metrics(pred, label)
    assert rounded == {k: float(np.round(v, 4)) for k, v in got.items()}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sims_matches_reference_on_random_data(seed):
    rng = np.random.default_rng(seed)
    label = rng.choice(np.arange(-5, 6) / 5, size=300)
    edges = [-1.01, -0.7, -0.1, 0.0, 0.1, 0.7, 1.01]
    pred = np.concatenate([rng.normal(0, 0.8, 280), rng.choice(edges, 20)])
    got = sims_metrics(pred, label, decimals=None)
    assert got == pytest.approx(_reference_sims(pred.tolist(), label.tolist()), abs=1e-12)
