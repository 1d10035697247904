"""The synthetic MMSA generator: layout, determinism, labels, padding and planted structure."""

import os
import pickle

import numpy as np
import pytest

from dhmd_graph.cli import main
from dhmd_graph.data import load_mmsa
from dhmd_graph.data.synthetic import (
    PROFILES,
    RELIABILITY_KEY,
    PlantedStructure,
    default_dataset_path,
    write_synthetic,
)
from dhmd_graph.metrics import regression_metrics

SMALL = {"train": 60, "valid": 20, "test": 20}
LAYOUTS = [("mosi", True), ("mosi", False), ("mosei", True), ("mosei", False), ("sims", False)]
MODALITIES = ("text", "audio", "vision")


def _read(path):
    with open(path, "rb") as file:
        return pickle.load(file)


def _lengths(split: dict) -> dict[str, np.ndarray]:
    n = len(split["regression_labels"])
    return {
        "text": split["text_bert"][:, 1].sum(axis=1),
        "audio": split.get("audio_lengths", np.full(n, split["audio"].shape[1])),
        "vision": split.get("vision_lengths", np.full(n, split["vision"].shape[1])),
    }


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """``small(profile, aligned, seed=0)``: the parsed 60/20/20 pickle, generated once."""
    root, made = tmp_path_factory.mktemp("small"), {}

    def get(profile, aligned, seed=0):
        key = (profile, aligned, seed)
        if key not in made:
            made[key] = _read(write_synthetic(root / f"{profile}_{aligned}_{seed}.pkl",
                                              profile, aligned, SMALL, seed))
        return made[key]
    return get


@pytest.fixture(scope="module")
def mosei_file(tmp_path_factory):
    """Aligned MOSEI profile, big enough for ridge regression."""
    path = tmp_path_factory.mktemp("mosei") / "mosei.pkl"
    return write_synthetic(path, "mosei", True, {"train": 1500, "valid": 50, "test": 500}, 0)


# ---------------------------------------------------------------- layout


@pytest.mark.parametrize("profile, aligned", LAYOUTS)
def test_mmsa_layout(small, profile, aligned):
    data = small(profile, aligned)
    spec = PROFILES[profile]
    steps = spec.aligned_steps if aligned else spec.unaligned_steps
    assert list(data) == ["train", "valid", "test"]
    for name, split in data.items():
        n = SMALL[name]
        expected = {"raw_text", "id", "text", "text_bert", "audio", "vision",
                    "regression_labels", "classification_labels", "annotations",
                    RELIABILITY_KEY}
        expected |= set() if aligned else {"audio_lengths", "vision_lengths"}
        expected |= {"regression_labels_T", "regression_labels_A", "regression_labels_V"} \
            if profile == "sims" else set()
        assert set(split) == expected
        for m in MODALITIES:
            assert split[m].shape == (n, steps[m], spec.dims[m])
            assert split[m].dtype == np.float32
        assert split["text_bert"].shape == (n, 3, steps["text"])
        assert split["text_bert"].dtype == np.int64
        for key in expected - {"text", "audio", "vision", "text_bert", RELIABILITY_KEY}:
            assert split[key].shape == (n,), key
        reliability = split[RELIABILITY_KEY]
        assert reliability.shape == (n, 3) and reliability.dtype == np.float32
        assert set(np.unique(reliability)) <= {0.0, 1.0}
        assert (reliability.min(axis=1) >= 0).all() and (reliability.sum(axis=1) >= 2).all()
        assert split["regression_labels"].dtype == np.float32
        assert all(i.count("$_$") == 1 and len(i.split("$_$")[0]) == 11 for i in split["id"])
        assert len(set(split["id"])) == n
        # classification labels and annotations follow the sign of the label
        classes = np.sign(split["regression_labels"]) + 1
        np.testing.assert_array_equal(split["classification_labels"], classes)
        assert set(split["annotations"]) <= {"Negative", "Neutral", "Positive"}


def test_no_video_is_shared_between_splits(small):
    videos = {name: {i.split("$_$")[0] for i in split["id"]}
              for name, split in small("mosei", True).items()}
    assert not videos["train"] & videos["valid"] and not videos["train"] & videos["test"]
    assert len(videos["train"]) < SMALL["train"]  # several clips per video


@pytest.mark.parametrize("profile, aligned", LAYOUTS)
def test_lengths_and_exact_zero_padding(small, profile, aligned):
    for split in small(profile, aligned).values():
        lengths = _lengths(split)
        for m in MODALITIES:
            length, features = lengths[m], split[m]
            assert length.min() >= 4 and length.max() <= features.shape[1]
            steps = np.arange(features.shape[1])
            padded = steps[None, :] >= length[:, None]  # (N, T)
            assert not features[padded].any()  # exactly zero after the length
            last = features[np.arange(len(length)), length - 1]  # (N, d)
            assert np.abs(last).sum(axis=1).min() > 0  # nothing zero inside the length
        if aligned:
            assert "audio_lengths" not in split and lengths["text"].std() > 0
        else:
            assert lengths["audio"].std() > 0 and lengths["vision"].std() > 0
        # text_bert: [CLS] words [SEP] under the attention mask, one word per token
        tokens, mask = split["text_bert"][:, 0], split["text_bert"][:, 1]
        rows = np.arange(len(tokens))
        assert (tokens[:, 0] == 101).all() and (tokens[rows, lengths["text"] - 1] == 102).all()
        assert not tokens[mask == 0].any() and not split["text_bert"][:, 2].any()
        words = [len(t.split()) for t in split["raw_text"]]
        np.testing.assert_array_equal(words, lengths["text"] - 2)


def test_sentiment_words_lie_in_one_window(small):
    # The raw text mirrors the time window: sentiment words only inside one contiguous
    # window of at most 60 % of the clip, all of one polarity.
    from dhmd_graph.data.synthetic import _NEGATIVE, _POSITIVE

    spans = []
    for text in small("mosei", True)["train"]["raw_text"]:
        words = text.split()
        polar = [i for i, w in enumerate(words) if w in _POSITIVE + _NEGATIVE]
        if len(polar) < 2:
            continue
        assert len({words[i] in _POSITIVE for i in polar}) == 1
        spans.append((polar[-1] - polar[0] + 1) / (len(words) + 2))
        assert spans[-1] <= 0.6 + 2 / (len(words) + 2)
    assert len(spans) > 30


def test_bad_arguments():
    with pytest.raises(ValueError, match="'sims' has no aligned version"):
        write_synthetic("unused.pkl", "sims", aligned=True)
    with pytest.raises(ValueError, match="unknown profile 'iemocap'"):
        write_synthetic("unused.pkl", "iemocap")
    with pytest.raises(ValueError, match="positive integer for each of"):
        write_synthetic("unused.pkl", "mosi", sizes={"train": 10, "valid": 0, "test": 5})
    with pytest.raises(ValueError, match="positive integer for each of"):
        default_dataset_path("mosi", sizes={"train": 10})
    assert not os.path.exists("unused.pkl")


# ---------------------------------------------------------------- determinism


def test_deterministic_per_seed(small, tmp_path):
    again = _read(write_synthetic(tmp_path / "again.pkl", "sims", False, SMALL, seed=0))
    first = small("sims", False)
    for name in first:
        for key, value in first[name].items():
            np.testing.assert_array_equal(again[name][key], value, err_msg=f"{name}/{key}")
    other = small("sims", False, seed=1)["train"]
    assert not np.array_equal(other["text"], first["train"]["text"])
    assert not np.array_equal(other["regression_labels"], first["train"]["regression_labels"])


# ---------------------------------------------------------------- labels


@pytest.mark.parametrize("profile, aligned", LAYOUTS)
def test_labels_on_the_real_grid(small, profile, aligned):
    for split in small(profile, aligned).values():
        keys = [k for k in split if k.startswith("regression_labels")]
        for key in keys:
            y = split[key].astype(np.float64)
            scale = PROFILES[profile].label_scale
            assert np.abs(y).max() <= scale + 1e-6
            if profile == "mosei":
                grid = [6]  # sixths (thirds and halves)
            elif profile == "sims":
                grid = [5]  # steps of 0.2
            else:
                grid = [5, 4, 3]  # 0.2 grid, quarters, thirds
            on_grid = np.zeros(len(y), dtype=bool)
            for step in grid:
                on_grid |= np.abs(y * step - np.round(y * step)) < 1e-5
            assert on_grid.all(), key


def test_mosei_labels_follow_the_real_tables(small, mosei_file):
    # Each value v of a split's table gets n * p_v samples, rounded (largest remainder):
    # at the real split size that reproduces the real label counts exactly.
    for name, split in small("mosei", True).items():
        table = PROFILES["mosei"].label_tables[name]
        sixths, counts = np.unique(np.round(split["regression_labels"] * 6), return_counts=True)
        got = dict(zip(sixths.astype(int).tolist(), counts.tolist(), strict=True))
        total = sum(table.values())
        for value, count in table.items():
            assert abs(got.get(round(value * 6), 0) - SMALL[name] * count / total) < 1
    # A larger split: the real zero fraction (3540 / 16326), mean and std of train.
    train = _read(mosei_file)["train"]["regression_labels"]
    table = PROFILES["mosei"].label_tables["train"]
    values, weights = np.array(list(table)), np.array(list(table.values())) / 16326
    assert np.mean(train == 0) == pytest.approx(3540 / 16326, abs=1e-3)
    assert train.mean() == pytest.approx(weights @ values, abs=0.01)  # about 0.14
    assert train.std() == pytest.approx(np.sqrt(weights @ values**2 - (weights @ values) ** 2),
                                        abs=0.01)  # about 1.1


def test_mosi_and_sims_label_shapes(small):
    mosi = np.concatenate([s["regression_labels"] for s in small("mosi", False).values()])
    assert np.mean(mosi == 0) < 0.1  # 4 % zeros in the real splits
    assert 1.0 < np.median(np.abs(mosi[mosi != 0])) < 2.0  # bimodal around +-1.5
    sims = small("sims", False)["train"]
    assert np.mean(sims["regression_labels"] == -1) == pytest.approx(373 / 1368, abs=0.02)
    for suffix in "TAV":  # unimodal labels: correlated with the label, not equal to it
        unimodal = sims[f"regression_labels_{suffix}"]
        corr = np.corrcoef(unimodal, sims["regression_labels"])[0, 1]
        assert 0.5 < corr < 0.99, suffix
        assert np.mean(unimodal != sims["regression_labels"]) > 0.2


# ---------------------------------------------------------------- planted structure


def _pooled(split: dict) -> dict[str, np.ndarray]:
    """Mean over the valid steps, ``(N, d_m)`` per modality."""
    lengths = _lengths(split)
    return {m: split[m].sum(axis=1, dtype=np.float64) / lengths[m][:, None] for m in MODALITIES}


def _ridge(train_x, train_y, test_x, penalty=1000.0):
    """Closed-form ridge on standardised features; returns test predictions."""
    mean, std = train_x.mean(axis=0), train_x.std(axis=0) + 1e-8
    x, z = (train_x - mean) / std, (test_x - mean) / std
    weight = np.linalg.solve(x.T @ x + penalty * np.eye(x.shape[1]), x.T @ (train_y - train_y.mean()))
    return z @ weight + train_y.mean()


def _r2(pred, y):
    return 1 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2)


def _reliable(split: dict) -> dict:
    """The samples of a split whose three modalities are all reliable."""
    keep = split[RELIABILITY_KEY].min(axis=1) == 1
    return {key: value[keep] for key, value in split.items()}


def test_planted_structure_measurably_holds(mosei_file):
    # Measured on the samples without a corrupted modality (70 % of them): a linear ridge
    # cannot ignore a modality in one sample and use it in the next, so corrupted samples
    # (tested below) would only blur what this test is about. Observed (seed 0) on all
    # samples: text 0.51, audio 0.21, vision 0.15, all 0.60, residual 0.17. Thresholds unchanged.
    data = {name: _reliable(split) for name, split in _read(mosei_file).items()}
    train, test = _pooled(data["train"]), _pooled(data["test"])
    y_train = data["train"]["regression_labels"].astype(np.float64)
    y_test = data["test"]["regression_labels"].astype(np.float64)

    def fit(modalities, target=y_train):
        cat = lambda pooled: np.concatenate([pooled[m] for m in modalities], axis=1)  # noqa: E731
        return _ridge(cat(train), target, cat(test))

    r2 = {m: _r2(fit([m]), y_test) for m in MODALITIES}
    r2_all = _r2(fit(MODALITIES), y_test)
    # Observed (seed 0, reliable samples): text 0.55, audio 0.26, vision 0.18, all 0.67,
    # residual 0.25 (version 2, without corruption: 0.54, 0.27, 0.19, 0.67, 0.27).
    assert r2["text"] > 0.35  # the shared channel: text alone is clearly informative
    assert r2["text"] > r2["audio"] > r2["vision"] > 0.05  # text strongest
    assert r2_all > r2["text"] + 0.08  # the full label needs audio and vision
    # Audio/vision explain part of what text leaves unexplained (their exclusive factors).
    residual = y_train - _ridge(train["text"], y_train, train["text"])
    text_test_residual = y_test - fit(["text"])
    assert _r2(fit(["audio", "vision"], residual), text_test_residual) > 0.1
    # And the metrics agree: the ridge on all modalities beats text alone.
    mae_text = regression_metrics(fit(["text"]), y_test)["MAE"]
    assert regression_metrics(fit(MODALITIES), y_test)["MAE"] < mae_text


def test_corrupted_modalities_carry_no_label_and_look_noisier(mosei_file):
    # Per-sample reliability: at most one corrupted modality per sample, modality m with
    # probability 0.1 (the default); noise replaces its signal, at 3x the step noise.
    data = _read(mosei_file)
    reliability = np.concatenate([split[RELIABILITY_KEY] for split in data.values()])
    corrupted = reliability == 0  # (N, 3)
    assert (corrupted.sum(axis=1) <= 1).all()
    np.testing.assert_allclose(corrupted.mean(axis=0), 0.1, atol=0.02)

    train, test = data["train"], data["test"]
    pooled = {name: _pooled(split) for name, split in data.items()}
    labels = {name: split["regression_labels"].astype(np.float64) for name, split in data.items()}
    for m, modality in enumerate(MODALITIES):
        fit_rows = train[RELIABILITY_KEY][:, m] == 1
        # Predictions of a ridge fitted on the samples where the modality is reliable.
        prediction = {name: _ridge(pooled["train"][modality][fit_rows], labels["train"][fit_rows],
                                   pooled[name][modality]) for name in ("train", "test")}
        reliable = test[RELIABILITY_KEY][:, m] == 1
        assert np.corrcoef(prediction["test"][reliable], labels["test"][reliable])[0, 1] > 0.3
        # On the corrupted samples of both splits (about 200) the modality says nothing.
        bad = {name: data[name][RELIABILITY_KEY][:, m] == 0 for name in ("train", "test")}
        corr = np.corrcoef(np.concatenate([prediction[n][bad[n]] for n in bad]),
                           np.concatenate([labels[n][bad[n]] for n in bad]))[0, 1]
        assert abs(corr) < 0.2, (modality, corr)
        # ... and shows it: its features carry more energy (observed about 5x).
        energy = (test[modality] ** 2).mean(axis=(1, 2))
        assert energy[~reliable].mean() > 2 * energy[reliable].mean(), modality
    # Corrupted text has no sentiment words.
    from dhmd_graph.data.synthetic import _NEGATIVE, _POSITIVE

    polar = np.array([any(w in _POSITIVE + _NEGATIVE for w in text.split())
                      for text in train["raw_text"]])
    text_corrupted = train[RELIABILITY_KEY][:, 0] == 0
    assert not polar[text_corrupted].any() and polar[~text_corrupted].mean() > 0.5


def test_without_corruption_only_the_corrupted_modalities_change(small, tmp_path):
    clean = _read(write_synthetic(
        tmp_path / "clean.pkl", "mosi", False, SMALL, 0,
        structure=PlantedStructure(corruption_probability=(0.0, 0.0, 0.0))))
    for name, split in small("mosi", False).items():
        corrupted = split[RELIABILITY_KEY] == 0  # (N, 3)
        assert corrupted.any() and (clean[name][RELIABILITY_KEY] == 1).all()
        for m, modality in enumerate(MODALITIES):
            rows = corrupted[:, m]
            np.testing.assert_array_equal(split[modality][~rows], clean[name][modality][~rows])
            assert all(not np.array_equal(a, b) for a, b in
                       zip(split[modality][rows], clean[name][modality][rows], strict=True))
        text_rows = corrupted[:, 0]
        np.testing.assert_array_equal(split["text_bert"][~text_rows],
                                      clean[name]["text_bert"][~text_rows])
        for key in ("regression_labels", "id", "audio_lengths", "vision_lengths"):
            np.testing.assert_array_equal(split[key], clean[name][key])


def test_bad_corruption_settings():
    with pytest.raises(ValueError, match="PlantedStructure.corruption_probability.*at most 1"):
        PlantedStructure(corruption_probability=(0.5, 0.4, 0.2))
    with pytest.raises(ValueError, match="PlantedStructure.corruption_probability"):
        PlantedStructure(corruption_probability=(0.1, 0.1))
    with pytest.raises(ValueError, match="PlantedStructure.corruption_noise_scale"):
        PlantedStructure(corruption_noise_scale=-1.0)


# ---------------------------------------------------------------- reading and caching


def test_loads_with_the_mmsa_reader(mosei_file, small, tmp_path):
    datasets = load_mmsa(mosei_file)
    assert {k: len(v) for k, v in datasets.items()} == {"train": 1500, "valid": 50, "test": 500}
    path = write_synthetic(tmp_path / "sims.pkl", "sims", False, SMALL, 0)
    sims = load_mmsa(path)["test"]
    raw = small("sims", False)["test"]
    np.testing.assert_array_equal(sims.lengths["audio"], raw["audio_lengths"])
    np.testing.assert_array_equal(sims.lengths["text"], raw["text_bert"][:, 1].sum(axis=1))
    np.testing.assert_array_equal(sims.unimodal_labels["vision"], raw["regression_labels_V"])
    np.testing.assert_array_equal(sims.extras[RELIABILITY_KEY], raw[RELIABILITY_KEY])
    assert datasets["train"].extras[RELIABILITY_KEY].shape == (1500, 3)


def test_default_dataset_path_generates_once(tmp_path, monkeypatch):
    monkeypatch.setenv("DHMD_CACHE", str(tmp_path))
    path = default_dataset_path("mosi", aligned=False, sizes=SMALL, seed=3)
    assert path.parent.parent == tmp_path / "synthetic" and path.parent.name.startswith("v")
    assert path.name == "mosi_unaligned_60-20-20_3.pkl"
    assert sorted(os.listdir(path.parent)) == [path.name]  # no scratch files left behind
    stamp = path.stat().st_mtime_ns
    assert default_dataset_path("mosi", False, dict(SMALL), 3) == path
    assert path.stat().st_mtime_ns == stamp  # not written again
    with pytest.raises(ValueError, match="no aligned version"):
        default_dataset_path("sims")


# ---------------------------------------------------------------- command line


def test_cli_synth(tmp_path, capsys):
    out = tmp_path / "sub" / "sims.pkl"
    argv = ["synth", str(out), "--profile", "sims", "--unaligned", "--sizes", "20,5,6",
            "--seed", "1"]
    assert main(argv) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    data = _read(out)
    assert [len(s["id"]) for s in data.values()] == [20, 5, 6]
    assert data["train"]["vision"].shape[1:] == (55, 709)
    same = _read(write_synthetic(tmp_path / "same.pkl", "sims", False,
                                 {"train": 20, "valid": 5, "test": 6}, seed=1))
    np.testing.assert_array_equal(same["test"]["audio"], data["test"]["audio"])


def test_cli_synth_bad_input(tmp_path, capsys):
    assert main(["synth", str(tmp_path / "x.pkl"), "--profile", "sims"]) == 2
    assert "no aligned version" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["synth", str(tmp_path / "x.pkl"), "--sizes", "200,50"])
    assert exit_info.value.code == 2
    assert "TRAIN,VALID,TEST" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
