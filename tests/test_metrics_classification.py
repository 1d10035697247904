"""Classification, multi-label and binary metrics: hand-computed cases and references."""

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score

from dhmd_graph.metrics import (
    BINARY_KEYS,
    CLASSIFICATION_KEYS,
    METRIC_KINDS,
    SENTIMENT3_KEYS,
    binary_metrics,
    classification_metrics,
    confusion_matrix,
    default_monitor,
    emotion_binary_metrics,
    metric_direction,
    metrics_for,
    multilabel_metrics,
    per_class_metrics,
    sentiment3_metrics,
    weighted_accuracy,
)

# ---------------------------------------------------------------- single-label classes

LABEL6 = [0, 0, 0, 1, 1, 2]
PRED6 = [0, 0, 1, 1, 2, 2]


def scores_for(classes, num_classes=3):
    """Scores whose argmax is ``classes``, with noise that does not change it."""
    rng = np.random.default_rng(0)
    scores = rng.uniform(0, 0.5, (len(classes), num_classes))
    scores[np.arange(len(classes)), classes] += 1.0
    return scores


def test_classification_worked_example():
    # class 0: TP 2, FP 0, FN 1 -> P 1, R 2/3, F1 0.8 (support 3)
    # class 1: TP 1, FP 1, FN 1 -> P 1/2, R 1/2, F1 0.5 (support 2)
    # class 2: TP 1, FP 1, FN 0 -> P 1/2, R 1, F1 2/3 (support 1)
    got = classification_metrics(scores_for(PRED6), LABEL6)
    assert list(got) == list(CLASSIFICATION_KEYS)
    assert got["Acc"] == 0.6667  # 4 / 6
    assert got["UAcc"] == round((2 / 3 + 1 / 2 + 1) / 3, 4) == 0.7222
    assert got["F1_weighted"] == round((3 * 0.8 + 2 * 0.5 + 2 / 3) / 6, 4) == 0.6778
    assert got["F1_macro"] == round((0.8 + 0.5 + 2 / 3) / 3, 4) == 0.6556
    # Class indices (int or whole floats, tensors) give the same numbers.
    assert classification_metrics(PRED6, LABEL6) == got
    assert classification_metrics(torch.tensor(PRED6, dtype=torch.float32),
                                  torch.tensor(LABEL6)) == got


def test_confusion_matrix_and_per_class():
    expected = [[2, 1, 0], [0, 1, 1], [0, 0, 1]]  # rows: truth, columns: prediction
    np.testing.assert_array_equal(confusion_matrix(PRED6, LABEL6), expected)
    np.testing.assert_array_equal(confusion_matrix(scores_for(PRED6, 4), LABEL6),
                                  np.pad(expected, ((0, 1), (0, 1))))  # C from the scores
    assert confusion_matrix(PRED6, LABEL6, num_classes=5).shape == (5, 5)
    with pytest.raises(ValueError, match="num_classes=2, but class 2 occurs"):
        confusion_matrix(PRED6, LABEL6, num_classes=2)
    report = per_class_metrics(PRED6, LABEL6, class_names=["happy", "sad", "angry"])
    assert report["happy"] == {"precision": 1.0, "recall": pytest.approx(2 / 3),
                               "F1": pytest.approx(0.8), "support": 3.0}
    assert report["sad"] == {"precision": 0.5, "recall": 0.5, "F1": 0.5, "support": 2.0}
    assert report["angry"] == {"precision": 0.5, "recall": 1.0, "F1": pytest.approx(2 / 3),
                               "support": 1.0}
    # A class that never occurs nor is predicted: zeros, without a warning.
    unused = per_class_metrics(PRED6, LABEL6, class_names=["a", "b", "c", "d"])["d"]
    assert unused == {"precision": 0.0, "recall": 0.0, "F1": 0.0, "support": 0.0}
    assert list(per_class_metrics(PRED6, LABEL6)) == ["0", "1", "2"]


def _reference_classification(pred, label):
    classes = sorted(set(label) | set(pred))
    f1, recall = {}, {}
    for c in classes:
        tp = sum(p == c and y == c for p, y in zip(pred, label, strict=True))
        fp = sum(p == c and y != c for p, y in zip(pred, label, strict=True))
        fn = sum(p != c and y == c for p, y in zip(pred, label, strict=True))
        f1[c] = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        if c in label:
            recall[c] = tp / label.count(c)
    return {
        "Acc": sum(p == y for p, y in zip(pred, label, strict=True)) / len(label),
        "UAcc": sum(recall.values()) / len(recall),
        "F1_weighted": sum(f1[c] * label.count(c) for c in classes) / len(label),
        "F1_macro": sum(f1.values()) / len(f1),
    }


@pytest.mark.parametrize("seed", [0, 1])
def test_classification_matches_reference_on_random_data(seed):
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 6, 200)
    scores = rng.normal(size=(200, 6)) + 1.5 * np.eye(6)[label]
    got = classification_metrics(scores, label, decimals=None)
    want = _reference_classification(scores.argmax(1).tolist(), label.tolist())
    assert got == pytest.approx(want, abs=1e-12)


# ---------------------------------------------------------------- MMSA's 3-class sentiment

# Rows: class scores (negative, neutral, positive).
SCORES3 = np.array([[2, 0, 1], [0, 3, 1], [0, 1, 2], [1, 2, 0], [0, 0, 1], [1, 2, 1]], float)
LABEL3 = [0, 1, 2, 2, 0, 1]


def test_sentiment3_worked_example():
    got = sentiment3_metrics(SCORES3, LABEL3)
    assert list(got) == list(SENTIMENT3_KEYS)
    # argmax [0, 1, 2, 1, 2, 1] vs [0, 1, 2, 2, 0, 1]: 4 / 6.
    assert got["Acc_3"] == 0.6667
    # F1 per class: 0: TP1 FP0 FN1 -> 2/3; 1: TP2 FP1 FN0 -> 4/5; 2: TP1 FP1 FN1 -> 1/2.
    assert got["F1_score_3"] == round((2 / 3 + 0.8 + 0.5) / 3, 4) == 0.6556
    # Negative-vs-positive argmax (neutral score dropped, tie -> negative): [0,1,1,0,1,0];
    # Has0 truth "label > 1" (neutral goes with negative): [0,0,1,1,0,0] -> 3 / 6.
    assert got["Has0_acc_2"] == 0.5
    # class 0 (support 4): TP2 FP1 FN2 -> 4/7; class 1 (support 2): TP1 FP2 FN1 -> 2/5.
    assert got["Has0_F1_score"] == round((4 * 4 / 7 + 2 * 0.4) / 6, 4) == 0.5143
    # Non0 keeps labels != 1: prediction [0, 1, 0, 1] against the *unmapped* labels
    # [0, 2, 2, 0] (MMSA's definition): only the first matches.
    assert got["Non0_acc_2"] == 0.25
    # class 0 (support 2): TP1 FP1 FN1 -> 1/2; class 2 (support 2): never predicted -> 0.
    assert got["Non0_F1_score"] == 0.25


def _reference_sentiment3(scores, label):
    """MMSA's classification evaluation, step by step from its description."""
    def f1w(truth, pred):
        return _reference_classification(list(pred), list(truth))["F1_weighted"]

    pred3 = [int(np.argmax(row)) for row in scores]
    two_way = [int(np.argmax([row[0], row[2]])) for row in scores]
    truth2 = [0 if v <= 1 else 1 for v in label]
    keep = [i for i, v in enumerate(label) if v != 1]
    non0_pred, non0_truth = [two_way[i] for i in keep], [label[i] for i in keep]
    return {
        "Has0_acc_2": sum(a == b for a, b in zip(two_way, truth2, strict=True)) / len(label),
        "Has0_F1_score": f1w(truth2, two_way),
        "Non0_acc_2": sum(a == b for a, b in zip(non0_pred, non0_truth, strict=True)) / len(keep),
        "Non0_F1_score": f1w(non0_truth, non0_pred),
        "Acc_3": sum(a == b for a, b in zip(pred3, label, strict=True)) / len(label),
        "F1_score_3": f1w(label, pred3),
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sentiment3_matches_reference_on_random_data(seed):
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 3, 150)
    scores = rng.normal(size=(150, 3)) + np.eye(3)[label]
    got = sentiment3_metrics(scores, label, decimals=None)
    assert got == pytest.approx(_reference_sentiment3(scores, label.tolist()), abs=1e-12)


def test_sentiment3_class_indices_and_edge_cases():
    # Class indices become one-hot scores: a neutral prediction counts as negative in Has0.
    classes = SCORES3.argmax(1)
    assert sentiment3_metrics(classes, LABEL3) == sentiment3_metrics(np.eye(3)[classes], LABEL3)
    got = sentiment3_metrics([1, 1], [1, 1])  # only neutral labels: Non0 undefined
    assert math.isnan(got["Non0_acc_2"]) and math.isnan(got["Non0_F1_score"])
    assert got["Acc_3"] == 1.0 and got["Has0_acc_2"] == 1.0
    with pytest.raises(ValueError, match="labels must be 0, 1 or 2"):
        sentiment3_metrics(SCORES3, [0, 1, 2, 3, 0, 1])


# ---------------------------------------------------------------- MulT's IEMOCAP protocol

# Two emotions, four samples; one-hot per emotion as in the MulT files.
TRUTH = np.array([[1, 0], [0, 1], [0, 1], [1, 1]])  # (N, K) present?
PRESENT = np.array([[1, 0], [0, 0], [1, 1], [1, 1]])  # predicted present?


def one_hot(presence):
    return np.eye(2)[presence]  # (N, K, 2): [absent, present]


def test_emotion_binary_worked_example():
    got = emotion_binary_metrics(one_hot(PRESENT) * 3.0 - 1.0, one_hot(TRUTH),
                                 label_names=["happy", "sad"])
    # happy: truth [1,0,0,1], pred [1,0,1,1] -> acc 3/4; present (support 2) TP2 FP1 FN0
    # -> 4/5, absent (support 2) TP1 FP0 FN1 -> 2/3.
    assert got["happy_acc"] == 0.75
    assert got["happy_F1"] == round((0.8 + 2 / 3) / 2, 4) == 0.7333
    # sad: truth [0,1,1,1], pred [0,0,1,1] -> 3/4; present (3) -> 4/5, absent (1) -> 2/3.
    assert got["sad_acc"] == 0.75
    assert got["sad_F1"] == round((3 * 0.8 + 2 / 3) / 4, 4) == 0.7667
    assert got["Avg_acc"] == 0.75 and got["Avg_F1"] == 0.75
    assert list(got) == ["happy_acc", "happy_F1", "sad_acc", "sad_F1", "Avg_acc", "Avg_F1"]
    # (N, K) logits (positive when > 0) and (N, K) 0/1 labels: the same numbers.
    logits = np.where(PRESENT == 1, 1.5, -0.5)
    assert emotion_binary_metrics(logits, TRUTH, label_names=["happy", "sad"]) == got


def test_iemocap4_kind_names_the_four_emotions():
    rng = np.random.default_rng(0)
    got = metrics_for("iemocap4")(rng.normal(size=(20, 4, 2)), rng.integers(0, 2, (20, 4)))
    assert list(got)[:8] == ["neutral_acc", "neutral_F1", "happy_acc", "happy_F1", "sad_acc",
                             "sad_F1", "angry_acc", "angry_F1"]
    assert default_monitor("iemocap4") in got


# ---------------------------------------------------------------- multi-label

def test_multilabel_worked_example():
    truth = np.array([[1, 0], [1, 0], [0, 0], [0, 0], [0, 0], [0, 0]])
    pred = np.array([[1, 0], [0, 1], [1, 0], [0, 0], [0, 0], [0, 0]])
    got = multilabel_metrics(np.where(pred == 1, 2.0, -2.0), truth, label_names=["joy", "fear"])
    # joy: P=2, N=4, TP=1, TN=3 -> (1*4/2 + 3) / (2*4) = 5/8.
    assert got["joy_WAcc"] == 0.625
    # joy F1: present (2) TP1 FP1 FN1 -> 1/2; absent (4) TP3 FP1 FN1 -> 3/4.
    assert got["joy_F1"] == round((2 * 0.5 + 4 * 0.75) / 6, 4) == 0.6667
    # fear is never present: WAcc undefined; absent (6) TP5 FN1 -> 10/11.
    assert math.isnan(got["fear_WAcc"])
    assert got["fear_F1"] == round(10 / 11, 4)
    assert got["Avg_WAcc"] == 0.625  # over the labels where it is defined
    assert got["Avg_F1"] == round((2 / 3 + 10 / 11) / 2, 4)
    # Pooled positives: TP1, FP2, FN1 -> 2/5.
    assert got["F1_micro"] == 0.4
    # Probabilities with threshold 0.5, and (N, C, 2) one-hot labels: the same.
    assert multilabel_metrics(np.where(pred == 1, 0.8, 0.3), one_hot(truth), threshold=0.5,
                              label_names=["joy", "fear"]) == pytest.approx(got, nan_ok=True)


def test_weighted_accuracy_is_the_mean_of_both_recalls():
    rng = np.random.default_rng(3)
    for _ in range(5):
        label, pred = rng.integers(0, 2, 40), rng.integers(0, 2, 40)
        assert weighted_accuracy(pred, label) == pytest.approx(
            balanced_accuracy_score(label, pred), abs=1e-12)
    assert math.isnan(weighted_accuracy([1, 0], [1, 1]))  # no negatives


def test_mosei_emotions_kind():
    rng = np.random.default_rng(1)
    got = metrics_for("mosei_emotions")(rng.normal(size=(30, 6)), rng.integers(0, 2, (30, 6)))
    assert [k for k in got if k.endswith("_WAcc")][:6] == [
        "happiness_WAcc", "sadness_WAcc", "anger_WAcc", "surprise_WAcc", "disgust_WAcc",
        "fear_WAcc"]


# ---------------------------------------------------------------- binary

def test_binary_worked_example():
    label = [1, 0, 1, 1, 0]
    logits = [2.0, -1.0, -0.5, 0.3, 0.1]  # -> [1, 0, 0, 1, 1]
    got = binary_metrics(logits, label)
    assert list(got) == list(BINARY_KEYS)
    assert got["Acc"] == 0.6
    assert got["F1"] == 0.6667  # TP2 FP1 FN1
    # negative class (support 2): TP1 FP1 FN1 -> 1/2; positive (support 3): 2/3.
    assert got["F1_weighted"] == round((3 * 2 / 3 + 2 * 0.5) / 5, 4) == 0.6
    assert binary_metrics([0.9, 0.2, 0.4, 0.6, 0.55], label, threshold=0.5) == got
    two_way = np.stack([np.zeros(5), logits], 1)  # (N, 2) scores: argmax
    assert binary_metrics(two_way, label) == got
    assert binary_metrics([1, 0, 0, 1, 1], label) == got  # hard 0/1 predictions


def test_binary_never_predicting_the_positive_class():
    got = binary_metrics([-1.0, -1.0, -1.0], [1, 0, 0])
    assert got["Acc"] == 0.6667 and got["F1"] == 0.0


# ---------------------------------------------------------------- bad input

def test_bad_input_raises():
    with pytest.raises(ValueError, match="class indices"):
        classification_metrics([0.5, 1.0], [0, 1])
    with pytest.raises(ValueError, match="class indices must be >= 0"):
        classification_metrics([0, 1], [0, -1])
    with pytest.raises(ValueError, match="differ in size"):
        classification_metrics([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="binary labels must be 0 or 1"):
        binary_metrics([0.3, -0.2], [2, 0])
    with pytest.raises(ValueError, match=r"disagree.*\(2, 3\) predictions and \(2, 2\)"):
        multilabel_metrics(np.zeros((2, 3)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="2 emotions, but 4 names"):
        emotion_binary_metrics(np.zeros((3, 2)), np.zeros((3, 2)), label_names="abcd")


# ---------------------------------------------------------------- dispatch and direction

@pytest.mark.parametrize("name, direction", [
    ("MAE", "min"), ("valid/MAE", "min"), ("loss", "min"), ("Corr", "max"),
    ("Has0_F1_score", "max"), ("Non0_acc_2", "max"), ("Mult_acc_7", "max"), ("Acc_3", "max"),
    ("F1_score_3", "max"), ("F1_weighted", "max"), ("UAcc", "max"), ("happiness_WAcc", "max"),
    ("Avg_F1", "max"), ("neutral_acc", "max"), ("F1_micro", "max"),
])
def test_metric_direction(name, direction):
    assert metric_direction(name) == direction


def test_metric_direction_refuses_unknown_names():
    with pytest.raises(ValueError, match="cannot tell.*'perplexity'.*monitor_mode"):
        metric_direction("perplexity")


def _inputs(kind, rng, n=40):
    """A prediction and a label of the shape each kind expects."""
    if kind in ("regression", "mosi", "mosei", "sims"):
        return rng.normal(size=n), rng.uniform(-1, 1, n)
    if kind == "sentiment3":
        return rng.normal(size=(n, 3)), rng.integers(0, 3, n)
    if kind in ("multiclass", "iemocap6"):
        return rng.normal(size=(n, 6)), rng.integers(0, 6, n)
    if kind in ("binary", "humour", "sarcasm"):
        return rng.normal(size=n), rng.integers(0, 2, n)
    width = 4 if kind == "iemocap4" else 6
    return rng.normal(size=(n, width)), rng.integers(0, 2, (n, width))


@pytest.mark.parametrize("kind", METRIC_KINDS)
def test_every_kind_computes_its_monitor(kind):
    values = metrics_for(kind)(*_inputs(kind, np.random.default_rng(0)))
    monitor = default_monitor(kind)
    assert monitor in values and math.isfinite(values[monitor])
    assert metric_direction(monitor) == ("min" if monitor == "MAE" else "max")
    assert all(metric_direction(key) in ("min", "max") for key in values)


def test_metrics_for_binds_options_and_refuses_unknown_kinds():
    got = metrics_for("multilabel", label_names=["a", "b"])(np.zeros((2, 2)), [[0, 1], [1, 0]])
    assert {"a_WAcc", "b_F1"} <= set(got)
    assert metrics_for("IEMOCAP6") is classification_metrics
    with pytest.raises(ValueError, match="unknown dataset kind 'meld'"):
        metrics_for("meld")


def test_class_report_against_hand_computed_values():
    from dhmd_graph.metrics import class_report, format_class_report, mean_class_report

    # truth 0 0 1 1 1 2; predicted 0 1 1 1 2 2 (argmax of one-hot scores)
    scores = np.eye(3)[[0, 1, 1, 1, 2, 2]]
    report = class_report("multiclass", 3, scores, [0, 0, 1, 1, 1, 2], ["a", "b", "c"])
    assert report["confusion_matrix"] == [[1, 1, 0], [0, 2, 1], [0, 0, 1]]
    b = report["per_class"]["b"]  # 2 of 3 predicted b are b; 2 of 3 true b found
    assert b["precision"] == pytest.approx(2 / 3) and b["recall"] == pytest.approx(2 / 3)
    assert b["F1"] == pytest.approx(2 / 3) and b["support"] == 3
    c = report["per_class"]["c"]  # precision 1/2, recall 1: F1 = 2/3
    assert (c["precision"], c["recall"], c["F1"]) == pytest.approx((0.5, 1.0, 2 / 3))
    binary = class_report("binary", None, np.array([2.0, -1.0, 0.5, -3.0]), [1, 1, 0, 0])
    assert binary["classes"] == ["0", "1"] and binary["confusion_matrix"] == [[1, 1], [1, 1]]
    assert class_report("regression", None, [0.1], [0.2]) is None
    both = mean_class_report([report, class_report("multiclass", 3, np.eye(3)[[0, 0, 1, 1, 1, 2]],
                                                   [0, 0, 1, 1, 1, 2], ["a", "b", "c"])])
    assert both["confusion_matrix"] == [[3, 1, 0], [0, 5, 1], [0, 0, 2]]  # summed
    assert both["per_class"]["c"]["precision"] == pytest.approx(0.75)  # (0.5 + 1) / 2
    assert "true b" in format_class_report(report) and "predicted c" in format_class_report(report)
