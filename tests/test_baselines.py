"""Trivial and linear baselines: what they predict, how they select, how they print."""

import json

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import Ridge

from dhmd_graph.baselines import (
    ALPHAS,
    baselines_to_dict,
    compare_to_baselines,
    fit_baselines,
    format_baselines,
    pooled_features,
    run_baselines,
)
from dhmd_graph.data import MultimodalDataset, write_arrays
from dhmd_graph.metrics import regression_metrics


def _split(features, labels, lengths=None, name="train", **options):
    n = len(labels)
    lengths = lengths or {}
    return MultimodalDataset(
        features, {k: lengths.get(k, np.full(n, v.shape[1])) for k, v in features.items()},
        labels, [f"{name}{i}" for i in range(n)], split=name, **options)


def _scores(seed=0, sizes=(80, 40, 40), noise=0.3):
    """Scores linear in a 3-wide one-step feature, plus a noise modality."""
    rng = np.random.default_rng(seed)
    weights = np.array([1.0, -2.0, 0.5])
    splits = {}
    for name, n in zip(("train", "valid", "test"), sizes, strict=True):
        x = rng.normal(size=(n, 1, 3)).astype(np.float32)
        y = x[:, 0] @ weights + noise * rng.normal(size=n)
        splits[name] = _split({"audio": x, "vision": rng.normal(size=(n, 2, 2)).astype(np.float32)},
                              y.astype(np.float32), name=name)
    return splits


def test_mean_and_ridge_on_scores():
    splits = _scores()
    mean, ridge = fit_baselines(splits)
    train_mean = splits["train"].labels.mean()
    expected = regression_metrics(np.full(40, train_mean), splits["test"].labels)
    assert mean.name == "mean" and np.isnan(mean.test.pop("Corr")) and np.isnan(expected.pop("Corr"))
    assert mean.test == expected
    assert ridge.name == "ridge" and ridge.test["MAE"] < 0.35 < mean.test["MAE"]
    assert ridge.test["Corr"] > 0.95
    assert "ridge on audio + vision" in ridge.description


def test_alpha_is_chosen_on_valid_and_test_plays_no_part():
    splits = _scores(noise=2.0, sizes=(30, 40, 40))
    ridge = fit_baselines(splits)[1]
    x = pooled_features(splits).splits
    valid_mae = [regression_metrics(Ridge(alpha=a).fit(x["train"], splits["train"].labels)
                                    .predict(x["valid"]), splits["valid"].labels)["MAE"]
                 for a in ALPHAS]
    assert ridge.selected == {"alpha": ALPHAS[int(np.argmin(valid_mae))]}
    # other test labels: same choice, same valid metrics
    test = splits["test"]
    splits["test"] = _split(test.features, -test.labels, name="test")
    again = fit_baselines(splits)[1]
    assert again.selected == ridge.selected and again.valid == ridge.valid
    assert again.test != ridge.test


def test_float_features_are_pooled_over_their_true_lengths_only():
    x = np.zeros((2, 3, 1), np.float32)
    x[0] = [[1.0], [3.0], [100.0]]  # length 2: the 100 is padding
    x[1] = [[2.0], [2.0], [2.0]]
    split = _split({"a": x, "b": x}, np.zeros(2, np.float32), lengths={"a": np.array([2, 3])})
    pooled = pooled_features({"train": split}, ["a"]).splits["train"].toarray()
    # means 2 and 2: standardised both to 0 (std 0 is left unscaled)
    np.testing.assert_allclose(pooled, [[0.0], [0.0]])


def test_tfidf_of_token_ids_matches_scikit_learn_on_the_same_words():
    rng = np.random.default_rng(1)
    ids = rng.integers(1, 9, size=(12, 6))
    lengths = rng.integers(1, 7, size=12)
    split = _split({"text": ids, "audio": np.zeros((12, 1, 1), np.float32)},
                   np.zeros(12, np.float32), lengths={"text": lengths})
    ours = pooled_features({"train": split}, ["text"])
    documents = [" ".join(f"w{i}" for i in row[:n]) for row, n in zip(ids, lengths, strict=True)]
    vectorizer = TfidfVectorizer(sublinear_tf=True, token_pattern=r"\S+", lowercase=False)
    reference = vectorizer.fit_transform(documents).toarray()
    # our columns are in order of first appearance; map them to scikit-learn's
    order, seen = [], set()
    for row, n in zip(ids, lengths, strict=True):
        for i in row[:n]:
            if i not in seen:
                seen.add(i)
                order.append(vectorizer.vocabulary_[f"w{i}"])
    np.testing.assert_allclose(ours.splits["train"].toarray(), reference[:, order], atol=1e-12)
    assert ours.parts == ["TF-IDF(text)"]


def test_bigrams_and_bert_token_ids():
    ids = np.array([[5, 6, 7, 0], [6, 7, 0, 0]])
    split = _split({"text": ids, "audio": np.zeros((2, 1, 1), np.float32)},
                   np.zeros(2, np.float32), lengths={"text": np.array([3, 2])})
    bigrams = pooled_features({"train": split}, ["text"], ngrams=2).splits["train"]
    assert bigrams.shape[1] == 5  # 5, 6, 7, (5 6), (6 7)
    tokens = np.stack([ids, (ids != 0).astype(int), np.zeros_like(ids)], axis=-1)  # (N, T, 3)
    bert = _split({"text": tokens, "audio": np.zeros((2, 1, 1), np.float32)},
                  np.zeros(2, np.float32), lengths={"text": np.array([4, 4])})
    np.testing.assert_allclose(
        pooled_features({"train": bert}, ["text"]).splits["train"].toarray(),
        pooled_features({"train": split}, ["text"]).splits["train"].toarray())
    with pytest.raises(ValueError, match="ngrams must be 1 or 2"):
        pooled_features({"train": split}, ngrams=3)
    with pytest.raises(ValueError, match="modalities must be among"):
        pooled_features({"train": split}, ["video"])


def _classes(num_classes, sizes=(60, 30, 30), seed=0):
    rng = np.random.default_rng(seed)
    splits = {}
    for name, n in zip(("train", "valid", "test"), sizes, strict=True):
        y = np.concatenate([np.zeros(n // 2, int), rng.integers(0, num_classes, n - n // 2)])
        x = np.eye(num_classes, dtype=np.float32)[y][:, None] * 3 + 0.1 * rng.normal(
            size=(n, 1, num_classes)).astype(np.float32)
        splits[name] = _split({"a": x, "b": rng.normal(size=(n, 1, 2)).astype(np.float32)},
                              y, name=name, label_kind="class", num_classes=num_classes)
    return splits


def test_majority_class_and_logistic_on_classes():
    splits = _classes(3)
    majority, logistic = fit_baselines(splits)
    assert majority.name == "majority" and "'0'" in majority.description
    test = splits["test"].labels
    assert majority.test["Acc"] == pytest.approx(np.mean(test == 0), abs=1e-4)
    assert logistic.name == "logistic" and logistic.test["Acc"] == 1.0
    assert set(logistic.selected) == {"C"}


def test_binary_prior_and_logistic():
    splits = _classes(2)
    prior, logistic = fit_baselines(splits)
    assert prior.name == "prior" and prior.test["F1"] == 0.0  # class 0 is the majority
    assert logistic.test["Acc"] == 1.0


def test_multilabel_prior_and_a_label_that_never_occurs():
    rng = np.random.default_rng(2)
    splits = {}
    for name, n in (("train", 60), ("valid", 30), ("test", 30)):
        x = rng.normal(size=(n, 1, 2)).astype(np.float32)
        labels = np.stack([x[:, 0, 0] > 0.5, x[:, 0, 1] > 1.5, np.zeros(n, bool)], axis=1)
        splits[name] = _split({"a": x, "b": x}, labels.astype(np.float32), name=name,
                              label_kind="multi_hot")
    prior, logistic = fit_baselines(splits)
    assert prior.name == "prior" and prior.test["F1_micro"] == 0.0  # every prior < 1/2
    assert logistic.test["0_F1"] > 0.9 and logistic.test["Avg_F1"] > prior.test["Avg_F1"]


def test_verdict_lines_on_scores_and_classes():
    splits = _scores()
    baselines = fit_baselines(splits)
    mean, ridge = baselines
    good = {"MAE": ridge.test["MAE"] - 0.01, "Corr": ridge.test["Corr"] + 0.001}
    lines = compare_to_baselines(good, baselines, monitor="MAE")
    assert lines[0].startswith("model beats the mean baseline on test: MAE")
    assert "Corr " in lines[0] and "vs none (better)" in lines[0]
    assert lines[1].startswith("model beats the ridge baseline")
    between = {"MAE": (mean.test["MAE"] + ridge.test["MAE"]) / 2, "Corr": 0.5}
    lines = compare_to_baselines(between, baselines, monitor="MAE")
    assert lines[0].startswith("model beats") and lines[1].startswith("model does NOT beat")
    assert "(not better)" in lines[1]
    # a constant model has no Corr: it beats no correlation
    lines = compare_to_baselines({"MAE": 0.0, "Corr": float("nan")}, baselines, monitor="MAE")
    assert all(line.startswith("model does NOT beat") for line in lines)

    classes = fit_baselines(_classes(3))
    lines = compare_to_baselines({"F1_weighted": 0.99}, classes, monitor="F1_weighted")
    assert lines[0].startswith("model beats the majority baseline on test: F1_weighted 0.9900")
    assert lines[1].startswith("model does NOT beat the logistic baseline")


def test_format_beside_a_model_and_as_json():
    baselines = fit_baselines(_scores())
    model = {"valid": {"MAE": 0.5, "Corr": 0.9}, "test": {"MAE": 0.6, "Corr": 0.8}}
    text = format_baselines(baselines, model)
    lines = text.splitlines()
    assert lines[0] == "baselines on test (fitted on train, selected on valid):"
    assert lines[2].startswith("model ") and lines[3].startswith("mean ")
    assert lines[4].startswith("ridge ")
    assert lines[-1].startswith("model does NOT beat the ridge baseline on test")
    assert "valid" in format_baselines(baselines, model, split="valid").splitlines()[0]
    assert "model " not in format_baselines(baselines).splitlines()[2]
    with pytest.raises(ValueError, match="monitor="):
        format_baselines(fit_baselines(_classes(3)), {"test": {"F1_weighted": 0.5}})
    data = json.loads(json.dumps(baselines_to_dict(baselines)))
    assert set(data) == {"mean", "ridge"} and data["ridge"]["selected"] == baselines[1].selected


def test_run_baselines_reads_a_dataset_folder(tmp_path):
    splits = _scores()
    write_arrays(splits, tmp_path / "data")
    results = run_baselines(tmp_path / "data")
    assert [r.name for r in results] == ["mean", "ridge"]
    assert results[1].test == fit_baselines(splits)[1].test
    with pytest.raises(ValueError, match="lack the split"):
        fit_baselines({"train": splits["train"]})
