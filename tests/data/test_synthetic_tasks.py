"""Synthetic task profiles: layout, label distributions, determinism and planted structure."""

import os
import pickle

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from dhmd_graph.data import load_dataset
from dhmd_graph.data.labels import IEMOCAP4_EMOTIONS, IEMOCAP6_EMOTIONS, MOSEI_EMOTIONS
from dhmd_graph.data.synthetic_tasks import (
    MOSEI_CORRELATION,
    MOSEI_PRESENCE,
    PROFILES,
    _humour,
    _iemocap4,
    _iemocap6,
    _mosei_emotions,
    _sarcasm,
    default_task_dataset_path,
    write_synthetic_task,
)
from dhmd_graph.metrics import metrics_for

TINY = {"train": 40, "valid": 12, "test": 12}
LEARN = {"train": 600, "valid": 2, "test": 300}
ALL = ("text", "audio", "vision")


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """``generated(profile, sizes, aligned=True, seed=0) -> Path``, each written once."""
    root, made = tmp_path_factory.mktemp("tasks"), {}

    def get(profile, sizes, aligned=True, seed=0):
        key = (profile, tuple(sizes.values()), aligned, seed)
        if key not in made:
            made[key] = write_synthetic_task(root / f"{'_'.join(map(str, key))}.pkl", profile,
                                             aligned, sizes, seed)
        return made[key]
    return get


# ---------------------------------------------------------------- layout

LABEL_LAYOUTS = {  # profile -> (labels shape after N, dtype, kind read, names read)
    "iemocap4": ((4, 2), np.float32, "multi_hot", IEMOCAP4_EMOTIONS),
    "iemocap6": ((), np.int64, "class", None),
    "mosei_emotions": ((6, 2), np.float32, "multi_hot", None),
    "humour": ((), np.int64, "class", None),
    "sarcasm": ((), np.int64, "class", None),
}


@pytest.mark.parametrize("profile", list(PROFILES))
@pytest.mark.parametrize("aligned", [True, False])
def test_mult_layout(generated, profile, aligned):
    spec = PROFILES[profile]
    path = generated(profile, TINY, aligned)
    with open(path, "rb") as file:
        data = pickle.load(file)
    shape, dtype, kind, names = LABEL_LAYOUTS[profile]
    steps = spec.aligned_steps if aligned else spec.unaligned_steps
    for split, n in TINY.items():
        raw = data[split]
        assert sorted(raw) == ["audio", "id", "labels", "text", "vision"]
        for name in ALL:
            assert raw[name].shape == (n, steps[name], spec.dims[name])
            assert raw[name].dtype == np.float32
        assert raw["labels"].shape == (n, *shape) and raw["labels"].dtype == dtype
        assert len(set(raw["id"])) == n and all("$_$" in i for i in raw["id"])
    splits = load_dataset(path)
    assert splits["test"].label_kind == kind and splits["test"].label_names == names
    assert splits["test"].num_classes == (2 if profile in ("humour", "sarcasm") else
                                          len(spec.label_names))


def test_generation_is_deterministic_per_seed(generated, tmp_path):
    first = load_dataset(generated("iemocap6", TINY, seed=3))["valid"]
    again = load_dataset(write_synthetic_task(tmp_path / "again.pkl", "iemocap6",
                                              sizes=TINY, seed=3))["valid"]
    other = load_dataset(generated("iemocap6", TINY, seed=4))["valid"]
    np.testing.assert_array_equal(first.features["audio"], again.features["audio"])
    np.testing.assert_array_equal(first.labels, again.labels)
    assert not np.array_equal(first.features["audio"], other.features["audio"])


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown profile 'meld'"):
        write_synthetic_task("unused.pkl", "meld")
    with pytest.raises(ValueError, match="sizes must give an integer >= 2"):
        write_synthetic_task("unused.pkl", "humour", sizes={"train": 10, "valid": 1, "test": 5})


def test_default_task_dataset_path_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("DHMD_CACHE", str(tmp_path))
    path = default_task_dataset_path("sarcasm", sizes=TINY)
    assert path.parent == tmp_path / "synthetic_tasks" / "v1"
    assert path.name == "sarcasm_aligned_40-12-12_0.pkl"
    mtime = os.stat(path).st_mtime_ns
    assert default_task_dataset_path("sarcasm", sizes=TINY) == path
    assert os.stat(path).st_mtime_ns == mtime


# ---------------------------------------------------------------- label distributions

def test_iemocap_classes_follow_the_documented_proportions():
    rng = np.random.default_rng(0)
    labels, _ = _iemocap4(4453, rng)
    assert (labels[:, :, 1].sum(1) == 1).all()  # one emotion per utterance
    counts = labels[:, :, 1].sum(0)
    np.testing.assert_allclose(counts, np.array([1708, 595, 1084, 1103]) * 4453 / 4490, atol=1)
    assert dict(zip(IEMOCAP4_EMOTIONS, counts, strict=True))["neutral"] == counts.max()
    classes, _ = _iemocap6(7433, rng)
    assert np.bincount(classes).tolist() == [648, 1084, 1708, 1103, 1041, 1849]  # exact
    assert IEMOCAP6_EMOTIONS[int(np.argmax(np.bincount(classes)))] == "frustrated"


def test_mosei_emotion_rates_and_co_occurrence():
    labels, latent = _mosei_emotions(40000, np.random.default_rng(0))
    present = labels[:, :, 1]  # (N, 6)
    rates = dict(zip(MOSEI_EMOTIONS, present.mean(0), strict=True))
    assert rates == pytest.approx(MOSEI_PRESENCE, abs=0.01)
    np.testing.assert_allclose(np.corrcoef(np.stack([latent[e] for e in MOSEI_EMOTIONS])),
                               MOSEI_CORRELATION, atol=0.02)
    column = {e: present[:, i] for i, e in enumerate(MOSEI_EMOTIONS)}

    def lift(a, b):  # P(a and b) / (P(a) P(b)): > 1 when they co-occur
        return (column[a] * column[b]).mean() / (column[a].mean() * column[b].mean())
    assert lift("anger", "disgust") > 2.0
    assert lift("sadness", "fear") > 1.3
    assert lift("happiness", "anger") < 0.7 and lift("happiness", "disgust") < 0.7
    assert 0.15 < (present.sum(1) == 0).mean() < 0.35  # some segments show no emotion
    assert (present.sum(1) >= 2).mean() > 0.15  # and many show several


@pytest.mark.parametrize("make", [_humour, _sarcasm])
def test_binary_tasks_are_balanced(make):
    labels, _ = make(101, np.random.default_rng(1))
    assert labels.dtype == np.int64 and set(labels.tolist()) == {0, 1}
    assert abs(int(labels.sum()) - 50) <= 1


def test_sarcasm_is_incongruity_between_words_and_delivery():
    labels, factors = _sarcasm(2000, np.random.default_rng(2))
    incongruent = np.sign(factors["literal_valence"]) != np.sign(factors["expressed_valence"])
    np.testing.assert_array_equal(labels, incongruent.astype(np.int64))
    # Neither valence alone says anything about the label.
    for name in ("literal_valence", "expressed_valence"):
        assert abs(np.corrcoef(factors[name], labels)[0, 1]) < 0.05


# ---------------------------------------------------------------- planted structure

def pooled(dataset, modalities=ALL, steps=None):
    parts = []
    for name in modalities:
        features = dataset.features[name]
        parts.append((features if steps is None else features[:, steps]).mean(1))
    return np.concatenate(parts, 1)


def fit_predict(train, test, modalities=ALL, balanced=False):
    """A logistic regression (one per label for multi-hot labels) on pooled features."""
    scaler = StandardScaler().fit(pooled(train, modalities))
    x_train, x_test = scaler.transform(pooled(train, modalities)), scaler.transform(
        pooled(test, modalities))

    def fit(y):
        model = LogisticRegression(C=0.05, max_iter=3000,
                                   class_weight="balanced" if balanced else None)
        return model.fit(x_train, y).predict(x_test)
    if train.labels.ndim == 1:
        return fit(train.labels)
    return np.stack([fit(train.labels[:, k]) for k in range(train.labels.shape[1])], 1)


def splits_of(generated, profile):
    splits = load_dataset(generated(profile, LEARN))
    return splits["train"], splits["test"]


def test_iemocap6_is_learnable_and_needs_more_than_text(generated):
    train, test = splits_of(generated, "iemocap6")
    majority = np.bincount(test.labels).max() / len(test)
    fused = metrics_for("iemocap6")(fit_predict(train, test), test.labels)
    text = metrics_for("iemocap6")(fit_predict(train, test, ("text",)), test.labels)
    assert fused["Acc"] > majority + 0.12
    assert fused["Acc"] > text["Acc"] + 0.06  # arousal and dominance are not in the text


def test_iemocap4_binary_tasks_are_learnable(generated):
    train, test = splits_of(generated, "iemocap4")
    fused = metrics_for("iemocap4")(fit_predict(train, test, balanced=True), test.labels)
    text = metrics_for("iemocap4")(fit_predict(train, test, ("text",), balanced=True),
                                   test.labels)
    majority = metrics_for("iemocap4")(np.zeros_like(test.labels), test.labels)
    assert fused["Avg_F1"] > majority["Avg_F1"] + 0.05
    assert fused["angry_F1"] > text["angry_F1"] + 0.05  # angry vs sad needs the arousal


def test_mosei_emotions_are_learnable_each_where_planted(generated):
    train, test = splits_of(generated, "mosei_emotions")
    fused = metrics_for("mosei_emotions")(fit_predict(train, test, balanced=True), test.labels)
    assert fused["Avg_WAcc"] > 0.5 + 0.12  # a constant prediction scores exactly 0.5
    by_modality = {name: metrics_for("mosei_emotions")(
        fit_predict(train, test, (name,), balanced=True), test.labels) for name in ALL}
    assert by_modality["vision"]["surprise_WAcc"] > by_modality["text"]["surprise_WAcc"] + 0.05
    assert by_modality["audio"]["fear_WAcc"] > by_modality["vision"]["fear_WAcc"] + 0.05
    assert by_modality["text"]["sadness_WAcc"] > by_modality["vision"]["sadness_WAcc"] + 0.05


def test_humour_is_learnable_and_lies_in_the_punchline(generated):
    train, test = splits_of(generated, "humour")
    assert (fit_predict(train, test) == test.labels).mean() > 0.5 + 0.2

    def halves(dataset):
        """Text pooled over the first and the second half of each true length."""
        text = dataset.features["text"]
        length = (np.abs(text).sum(2) > 0).sum(1)  # exact zeros after the length
        position = np.arange(text.shape[1])[None, :] / length[:, None]
        first, second = (position < 0.5), (position >= 0.5) & (position < 1)
        return [(text * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)
                for mask in (first, second)]

    accuracy = []
    for half_train, half_test in zip(halves(train), halves(test), strict=True):
        scaler = StandardScaler().fit(half_train)
        model = LogisticRegression(C=0.05, max_iter=3000).fit(scaler.transform(half_train),
                                                              train.labels)
        accuracy.append((model.predict(scaler.transform(half_test)) == test.labels).mean())
    assert accuracy[1] > accuracy[0] + 0.08


def test_sarcasm_has_only_a_weak_linear_cue(generated):
    train, test = splits_of(generated, "sarcasm")
    accuracy = {modalities: (fit_predict(train, test, modalities) == test.labels).mean()
                for modalities in (("text",), ("audio",), ALL)}
    assert accuracy[("text",)] < 0.6  # the words alone: chance
    assert accuracy[ALL] > 0.55  # the audio tone cue
