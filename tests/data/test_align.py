import json
import os

import numpy as np
import pytest

from dhmd_graph.cli import main
from dhmd_graph.data import DatasetError, convert_to_cache, load_dataset, read_csd
from dhmd_graph.data.align import EPSILON, align_csd, load_folds
from dhmd_graph.files import OutsideFolderWarning

h5py = pytest.importorskip("h5py")

FOLDS = {"train": ["vid_a"], "valid": ["vid_b"], "test": ["vid_c"]}


def write_csd(path, entries: dict, name: str = "seq"):
    """A .csd file: ``entries`` maps an entry id to ``(features, intervals)``."""
    with h5py.File(path, "w") as handle:
        group = handle.create_group(name)
        group.create_group("data")
        for key, (features, intervals) in entries.items():
            entry = group.create_group(f"data/{key}")
            entry["features"] = np.asarray(features)
            entry["intervals"] = np.asarray(intervals, dtype=np.float64)
        metadata = group.create_group("metadata")
        metadata.create_dataset("root name", (1,), dtype=h5py.string_dtype())[0] = json.dumps(name)
    return path


def frames(start: float, stop: float, step: float, width: int, seed: int):
    """Frame-level rows: consecutive intervals of ``step`` seconds over [start, stop)."""
    starts = np.arange(start, stop - 1e-9, step)
    features = np.random.default_rng(seed).normal(size=(len(starts), width))
    return features, np.stack([starts, starts + step], axis=1)


# Words of every video (seconds). The gap 1.0-1.4 holds no word; word 4 (1.4-1.6) lies in
# segment 1, word 5 (2.0-2.2) in no segment.
WORDS = [[0.0, 0.3], [0.3, 0.5], [0.5, 1.0], [1.4, 1.6], [1.6, 1.9], [2.0, 2.2]]
SEGMENTS = [[0.0, 1.0], [1.2, 1.9]]


@pytest.fixture
def sdk(tmp_path):
    """Words, audio frames (10 Hz) and 2-segment labels of three videos, as .csd files."""
    rng = np.random.default_rng(0)
    words, audio, labels = {}, {}, {}
    for v, video in enumerate(["vid_a", "vid_b", "vid_c"]):
        words[video] = (rng.normal(size=(len(WORDS), 3)), WORDS)
        audio[video] = frames(0.0, 2.2, 0.1, 2, seed=v)
        labels[video] = (np.array([[1.5], [-2.0 + v]]), SEGMENTS)
    return {"text": write_csd(tmp_path / "words.csd", words, "glove_vectors"),
            "audio": write_csd(tmp_path / "audio.csd", audio, "COVAREP"),
            "labels": write_csd(tmp_path / "labels.csd", labels, "Opinion Segment Labels")}


def _within(intervals, start, end):
    """The SDK's rule, written out: rows sharing more than EPSILON seconds with [start, end]."""
    return [i for i, (s, e) in enumerate(intervals) if min(e, end) - max(s, start) > EPSILON]


def test_word_level_alignment_collapses_audio_onto_the_words(sdk):
    datasets = align_csd({"text": sdk["text"], "audio": sdk["audio"]}, sdk["labels"],
                         folds=FOLDS, reference="text")
    assert list(datasets) == ["train", "valid", "test"]
    train = datasets["train"]
    assert train.ids == ["vid_a[0]", "vid_a[1]"]
    assert train.modalities == ("text", "audio") and train.feature_dims == {"text": 3, "audio": 2}
    words = read_csd(sdk["text"]).entries["vid_a"]
    audio = read_csd(sdk["audio"]).entries["vid_a"]
    for i, (start, end) in enumerate(SEGMENTS):
        in_segment = _within(words.intervals, start, end)
        assert train.lengths["text"][i] == train.lengths["audio"][i] == len(in_segment)
        for step, word in enumerate(in_segment):
            np.testing.assert_allclose(train.features["text"][i, step], words.features[word],
                                       rtol=1e-6)
            under = _within(audio.intervals, *words.intervals[word])
            np.testing.assert_allclose(train.features["audio"][i, step],
                                       audio.features[under].mean(axis=0), rtol=1e-5)
    assert train.lengths["text"].tolist() == [3, 2]  # words 0-2 and 3-4; word 5 in no segment
    assert not train.features["audio"][1, 2:].any()  # zero padding after the length
    np.testing.assert_allclose(datasets["test"].labels, [1.5, 0.0])


def test_reduction_by_name_or_function(sdk):
    features = {"text": sdk["text"], "audio": sdk["audio"]}
    by_max = align_csd(features, sdk["labels"], folds=FOLDS, reference="text", reduction="max")
    by_function = align_csd(features, sdk["labels"], folds=FOLDS, reference="text",
                            reduction=lambda rows: rows.max(axis=0))
    np.testing.assert_array_equal(by_max["valid"].features["audio"],
                                  by_function["valid"].features["audio"])
    audio = read_csd(sdk["audio"]).entries["vid_b"]
    first_word = _within(audio.intervals, *WORDS[0])
    np.testing.assert_allclose(by_max["valid"].features["audio"][0, 0],
                               audio.features[first_word].max(axis=0), rtol=1e-6)


def test_sequences_keep_every_row_in_time_order(sdk, tmp_path):
    audio = read_csd(sdk["audio"]).entries["vid_a"]
    shuffled = np.random.default_rng(1).permutation(len(audio.features))
    write_csd(tmp_path / "shuffled.csd", {video: (audio.features[shuffled],
                                                  audio.intervals[shuffled])
                                          for video in ("vid_a", "vid_b", "vid_c")})
    datasets = align_csd({"audio": tmp_path / "shuffled.csd", "text": sdk["text"]}, sdk["labels"],
                         folds=FOLDS)
    train = datasets["train"]
    for i, (start, end) in enumerate(SEGMENTS):
        rows = _within(audio.intervals, start, end)
        assert train.lengths["audio"][i] == len(rows)
        np.testing.assert_allclose(train.features["audio"][i, : len(rows)], audio.features[rows],
                                   rtol=1e-6)
    assert train.lengths["audio"].tolist() == [10, 7]
    assert train.lengths["text"].tolist() == [3, 2]  # each modality has its own lengths
    truncated = align_csd({"audio": sdk["audio"]}, sdk["labels"], folds=FOLDS,
                          max_steps={"audio": 4})
    assert truncated["train"].lengths["audio"].tolist() == [4, 4]
    np.testing.assert_array_equal(truncated["train"].features["audio"],
                                  train.features["audio"][:, :4])


def test_a_word_without_audio_is_left_out_of_every_modality(sdk, tmp_path):
    features, intervals = frames(0.0, 2.2, 0.1, 2, seed=0)
    keep = ~((intervals[:, 0] >= 0.3 - 1e-9) & (intervals[:, 1] <= 0.5 + 1e-9))  # word 1's span
    write_csd(tmp_path / "gap.csd", {v: (features[keep], intervals[keep])
                                     for v in ("vid_a", "vid_b", "vid_c")})
    train = align_csd({"text": sdk["text"], "audio": tmp_path / "gap.csd"}, sdk["labels"],
                      folds=FOLDS, reference="text")["train"]
    words = read_csd(sdk["text"]).entries["vid_a"]
    assert train.lengths["text"].tolist() == [2, 2]
    np.testing.assert_allclose(train.features["text"][0, :2], words.features[[0, 2]], rtol=1e-6)


def test_a_segment_without_features(sdk, tmp_path):
    features, intervals = frames(0.0, 1.1, 0.1, 2, seed=0)  # nothing after 1.1 s
    entries = {v: (features, intervals) for v in ("vid_a", "vid_b", "vid_c")}
    write_csd(tmp_path / "short.csd", entries)
    inputs = {"text": sdk["text"], "audio": tmp_path / "short.csd"}
    with pytest.raises(DatasetError, match="labelled segment without features") as info:
        align_csd(inputs, sdk["labels"], folds=FOLDS)
    message = str(info.value)
    assert "'vid_a[1]'" in message and "1.200-1.900 s" in message and "short.csd" in message
    assert "0.000-1.100 s" in message and "missing='drop'" in message
    with pytest.warns(UserWarning, match=r"3 labelled segment\(s\) .* dropped"):
        datasets = align_csd(inputs, sdk["labels"], folds=FOLDS, missing="drop")
    assert datasets["train"].ids == ["vid_a[0]"] and datasets["test"].ids == ["vid_c[0]"]


def test_mismatched_video_ids(sdk, tmp_path):
    entries = {video: frames(0.0, 2.2, 0.1, 2, seed=0) for video in ("vid_a", "vid_c", "other")}
    write_csd(tmp_path / "partial.csd", entries)
    inputs = {"text": sdk["text"], "audio": tmp_path / "partial.csd"}
    with pytest.raises(DatasetError, match="labelled videos missing from a feature") as info:
        align_csd(inputs, sdk["labels"], folds=FOLDS)
    assert "1 without one, e.g. ['vid_b']" in str(info.value) and info.value.field == "audio"
    with pytest.raises(DatasetError, match="no labelled video of a split in a feature") as info, \
            pytest.warns(UserWarning, match="missing from"):
        align_csd(inputs, sdk["labels"], folds=FOLDS, missing="drop")  # 'valid' is vid_b only
    assert "'valid' videos" in str(info.value)
    folds = {"train": ["vid_a", "vid_b"], "valid": ["vid_c"], "test": ["other"]}
    write_csd(tmp_path / "labels.csd", {v: (np.array([[1.0], [2.0]]), SEGMENTS)
                                        for v in ("vid_a", "vid_b", "vid_c", "other")})
    write_csd(tmp_path / "words.csd", {v: (np.ones((6, 3)), WORDS)
                                       for v in ("vid_a", "vid_b", "vid_c", "other")})
    with pytest.warns(UserWarning, match=r"1 labelled video\(s\) missing from .*partial.csd.*"
                      r"left out \(missing='drop'\), e.g. \['vid_b'\]"):
        datasets = align_csd({"text": tmp_path / "words.csd", "audio": tmp_path / "partial.csd"},
                             tmp_path / "labels.csd", folds=folds, missing="drop")
    assert datasets["train"].ids == ["vid_a[0]", "vid_a[1]"]
    with pytest.raises(DatasetError, match="no labelled video of a fold") as info:
        align_csd(inputs, sdk["labels"], folds="mosi")
    assert info.value.split == "train" and "2iD-tVS8NPw" in str(info.value)


@pytest.mark.parametrize("segments, problem", [
    ([[0.0, 1.0], [1.9, 1.2]], "interval ends before it starts"),
    ([[0.0, 1.0], [1.2, 1.2]], "empty labelled segment"),
    ([[0.0, np.nan], [1.2, 1.9]], "non-finite interval"),
])
def test_bad_label_intervals(sdk, tmp_path, segments, problem):
    labels = {v: (np.array([[0.5], [1.0]]), segments) for v in ("vid_a", "vid_b", "vid_c")}
    write_csd(tmp_path / "bad.csd", labels)
    with pytest.raises(DatasetError, match=problem) as info:
        align_csd({"text": sdk["text"]}, tmp_path / "bad.csd", folds=FOLDS)
    assert info.value.field == "vid_a/intervals" and "bad.csd" in str(info.value)


def test_overlapping_reference_rows_collapse_each_its_own_rows(sdk, tmp_path):
    overlapping = [[0.0, 0.4], [0.3, 0.5], [0.5, 1.0], [1.4, 1.6], [1.6, 1.9], [2.0, 2.2]]
    rng = np.random.default_rng(0)
    words = rng.normal(size=(6, 3))
    write_csd(tmp_path / "words.csd", {v: (words, overlapping) for v in ("vid_a", "vid_b", "vid_c")})
    inputs = {"text": tmp_path / "words.csd", "audio": sdk["audio"]}
    train = align_csd(inputs, sdk["labels"], folds=FOLDS, reference="text")["train"]
    audio = read_csd(sdk["audio"]).entries["vid_a"]
    assert train.lengths["text"].tolist() == [3, 2]
    for step, word in enumerate(overlapping[:3]):  # the audio frame 0.3-0.4 is in words 0 and 1
        under = _within(audio.intervals, *word)
        np.testing.assert_allclose(train.features["audio"][0, step],
                                   audio.features[under].mean(axis=0), rtol=1e-5)
    # Two reference rows of one interval have no time order: refused, naming both rows.
    repeated = [[0.0, 0.3], [0.0, 0.3 + EPSILON / 2]] + WORDS[2:]
    write_csd(tmp_path / "words.csd", {v: (words, repeated) for v in ("vid_a", "vid_b", "vid_c")})
    with pytest.raises(DatasetError, match="two reference rows of the same interval") as info:
        align_csd(inputs, sdk["labels"], folds=FOLDS, reference="text")
    assert "rows 0 [0.0, 0.3] and 1" in str(info.value) and info.value.field == "vid_a/intervals"
    # Kept as a sequence, the same rows are fine (analysis windows may repeat).
    assert align_csd(inputs, sdk["labels"], folds=FOLDS)["train"].lengths["text"].tolist() == [3, 2]


def test_two_overlapping_segments_take_their_rows_by_the_rule(tmp_path):
    # The rule, written out: a row [s, e] belongs to a segment [S, E] when
    # min(e, E) - max(s, S) > 1e-5 s, for each segment on its own.
    # Segment 0 is [0.0, 1.0], segment 1 is [0.6, 1.9]; they overlap by 0.4 s.
    #   row 0 [0.0, 0.5]        shares 0.5 s with segment 0, none with 1 (ends before 0.6)
    #   row 1 [0.5, 0.95]       0.45 s with segment 0, 0.35 s with segment 1
    #   row 2 [0.95, 1.05]      0.05 s with segment 0 (straddles its end), 0.1 s with 1
    #   row 3 [1.05, 1.6]       none with segment 0 (starts after 1.0), 0.55 s with 1
    #   row 4 [1.6, 1.9]        0.3 s with segment 1
    #   row 5 [1.9 - 5e-6, 2.2] 5e-6 s with segment 1: not more than 1e-5, so in neither
    rows = [[0.0, 0.5], [0.5, 0.95], [0.95, 1.05], [1.05, 1.6], [1.6, 1.9], [1.9 - 5e-6, 2.2]]
    expected = {0: [0, 1, 2], 1: [1, 2, 3, 4]}
    features = np.arange(12, dtype=np.float64).reshape(6, 2)
    videos = ("vid_a", "vid_b", "vid_c")
    write_csd(tmp_path / "audio.csd", {v: (features, rows) for v in videos})
    write_csd(tmp_path / "labels.csd", {v: (np.array([[1.0], [-1.0]]), [[0.0, 1.0], [0.6, 1.9]])
                                        for v in videos})
    train = align_csd({"audio": tmp_path / "audio.csd"}, tmp_path / "labels.csd",
                      folds=FOLDS)["train"]
    assert train.ids == ["vid_a[0]", "vid_a[1]"]
    for segment, indices in expected.items():
        assert _within(rows, *[[0.0, 1.0], [0.6, 1.9]][segment]) == indices  # the rule agrees
        assert train.lengths["audio"][segment] == len(indices)
        np.testing.assert_array_equal(train.features["audio"][segment, : len(indices)],
                                      features[indices])
    np.testing.assert_allclose(train.labels, [1.0, -1.0])


def test_features_checks(sdk, tmp_path):
    features, intervals = frames(0.0, 2.2, 0.1, 2, seed=0)
    features[3, 1] = -np.inf
    write_csd(tmp_path / "inf.csd", {v: (features, intervals) for v in ("vid_a", "vid_b", "vid_c")})
    train = align_csd({"audio": tmp_path / "inf.csd"}, sdk["labels"], folds=FOLDS)["train"]
    assert train.features["audio"][0, 3, 1] == 0.0 and train.features["audio"][0, 3, 0] != 0.0
    features[5, 0] = np.nan
    write_csd(tmp_path / "nan.csd", {v: (features, intervals) for v in ("vid_a", "vid_b", "vid_c")})
    with pytest.raises(DatasetError, match=r"non-finite value \(NaN\) in row 5.*nan='zero'"):
        align_csd({"audio": tmp_path / "nan.csd"}, sdk["labels"], folds=FOLDS)
    zeroed = align_csd({"audio": tmp_path / "nan.csd"}, sdk["labels"], folds=FOLDS, nan="zero")
    assert zeroed["train"].features["audio"][0, 5, 0] == 0.0
    np.testing.assert_array_equal(zeroed["train"].features["audio"][0, 6:],
                                  train.features["audio"][0, 6:])
    labels = {v: (np.array([[-np.inf], [1.0]]), SEGMENTS) for v in ("vid_a", "vid_b", "vid_c")}
    write_csd(tmp_path / "inf_labels.csd", labels)
    with pytest.raises(DatasetError, match="NaN or infinite values") as info:  # no -inf -> 0
        align_csd({"audio": tmp_path / "inf.csd"}, tmp_path / "inf_labels.csd", folds=FOLDS)
    assert info.value.field == "vid_a/features" and "inf_labels.csd" in str(info.value)
    words = np.array([[b"hello"], [b"world"]])
    write_csd(tmp_path / "words.csd", {v: (words, [[0.0, 0.5], [0.5, 1.0]])
                                       for v in ("vid_a", "vid_b", "vid_c")})
    with pytest.raises(DatasetError, match="features are not numeric"):
        align_csd({"text": tmp_path / "words.csd"}, sdk["labels"], folds=FOLDS)


def test_aligned_entries_are_joined_into_their_video(sdk, tmp_path):
    whole = read_csd(sdk["audio"])
    split = {}
    for video, entry in whole.entries.items():
        for k, part in enumerate(np.array_split(np.arange(len(entry.features)), 3)):
            split[f"{video}[{k}]"] = (entry.features[part], entry.intervals[part])
    write_csd(tmp_path / "aligned.csd", split)
    joined = align_csd({"audio": tmp_path / "aligned.csd"}, sdk["labels"], folds=FOLDS)
    direct = align_csd({"audio": sdk["audio"]}, sdk["labels"], folds=FOLDS)
    np.testing.assert_array_equal(joined["test"].features["audio"],
                                  direct["test"].features["audio"])


def test_builtin_folds_on_real_video_ids(tmp_path):
    # Real CMU-MOSEI ids: '-3g5yACwYnA' is in the standard train fold, '188343' in valid,
    # '7l3BNtSE0xc' in test; 'not-a-mosei-video' is in no fold.
    videos = {"-3g5yACwYnA": "train", "188343": "valid", "7l3BNtSE0xc": "test",
              "not-a-mosei-video": None}
    rng = np.random.default_rng(0)
    labels = {v: (rng.uniform(-3, 3, size=(2, 7)), SEGMENTS) for v in videos}
    write_csd(tmp_path / "labels.csd", labels, "All Labels")
    write_csd(tmp_path / "audio.csd", {v: frames(0.0, 2.0, 0.1, 2, seed=0) for v in videos})
    with pytest.warns(UserWarning, match=r"1 labelled video\(s\) are in no fold.*not-a-mosei"):
        datasets = align_csd({"audio": tmp_path / "audio.csd"}, tmp_path / "labels.csd",
                             folds="mosei")
    for video, split in videos.items():
        if split is not None:
            assert datasets[split].ids == [f"{video}[0]", f"{video}[1]"]
            np.testing.assert_allclose(datasets[split].labels, labels[video][0][:, 0], rtol=1e-6)
    mosei = load_folds("mosei")
    assert {k: len(v) for k, v in mosei.items()} == {"train": 2249, "valid": 300, "test": 678}
    assert {k: len(v) for k, v in load_folds("mosi").items()} == {"train": 52, "valid": 10,
                                                                  "test": 31}


def test_label_columns(sdk, tmp_path):
    rng = np.random.default_rng(0)
    matrix = np.concatenate([rng.uniform(-3, 3, (2, 1)), rng.uniform(0, 3, (2, 6))], axis=1)
    write_csd(tmp_path / "labels.csd", {v: (matrix, SEGMENTS) for v in ("vid_a", "vid_b", "vid_c")})
    inputs = ({"text": sdk["text"]}, tmp_path / "labels.csd")
    sentiment = align_csd(*inputs, folds=FOLDS)["train"].labels
    np.testing.assert_allclose(sentiment, matrix[:, 0], rtol=1e-6)
    anger = align_csd(*inputs, folds=FOLDS, label_column=3)["train"].labels
    np.testing.assert_allclose(anger, matrix[:, 3], rtol=1e-6)
    seen = []
    total = align_csd(*inputs, folds=FOLDS, label_column=lambda m: seen.append(m.shape)
                      or m[:, 1:].sum(axis=1))["train"].labels
    np.testing.assert_allclose(total, matrix[:, 1:].sum(axis=1), rtol=1e-6)
    assert seen[0] == (2, 7)  # the function sees every column
    with pytest.raises(DatasetError, match=r"a column in 0\.\.6"):
        align_csd(*inputs, folds=FOLDS, label_column=7)
    with pytest.raises(DatasetError, match=r"labels in \[0, 1\]"):
        align_csd(*inputs, folds=FOLDS, label_range=(0, 1))


def test_folds_from_a_file_and_their_checks(sdk, tmp_path):
    path = tmp_path / "folds.json"
    path.write_text(json.dumps({**FOLDS, "source": "made for this test"}))
    assert align_csd({"text": sdk["text"]}, sdk["labels"], folds=path)["valid"].ids == [
        "vid_b[0]", "vid_b[1]"]
    for bad, problem in [({**FOLDS, "valid": ["vid_a"]}, "a video is in two folds"),
                         ({"train": ["vid_a"], "test": ["vid_c"]}, "missing or malformed fold"),
                         ({**FOLDS, "dev": []}, "unknown folds key")]:
        path.write_text(json.dumps(bad))
        with pytest.raises(DatasetError, match=problem):
            load_folds(path)
    with pytest.raises(DatasetError, match="cannot read the folds"):
        load_folds(tmp_path / "absent.json")


def test_bad_options(sdk):
    for options, field in [({"reference": "vision"}, "reference"),
                           ({"reduction": "median"}, "reduction"),
                           ({"missing": "skip"}, "missing"),
                           ({"nan": "drop"}, "nan"),
                           ({"max_steps": 0}, "max_steps"),
                           ({"max_steps": {"vision": 3}}, "max_steps")]:
        with pytest.raises(DatasetError, match="invalid alignment option") as info:
            align_csd({"text": sdk["text"]}, sdk["labels"], folds=FOLDS, **options)
        assert info.value.field == field


def _recipe(tmp_path, sdk, **extra):
    recipe = {"labels": "labels.csd", "features": {"text": "words.csd", "audio": "audio.csd"},
              "folds": "folds.json", "reference": "text", **extra}
    (tmp_path / "folds.json").write_text(json.dumps(FOLDS))
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(recipe))
    return path


def test_a_recipe_is_a_dataset_and_converts_to_a_cache(sdk, tmp_path):
    recipe = _recipe(tmp_path, sdk, max_steps=2)
    direct = align_csd({"text": sdk["text"], "audio": sdk["audio"]}, sdk["labels"], folds=FOLDS,
                       reference="text", max_steps=2)
    loaded = load_dataset(recipe)
    np.testing.assert_array_equal(loaded["test"].features["audio"],
                                  direct["test"].features["audio"])
    cache = convert_to_cache(recipe, tmp_path / "cache")
    cached = load_dataset(cache)
    assert isinstance(cached["train"].features["text"], np.memmap)
    assert cached["train"].ids == direct["train"].ids
    np.testing.assert_array_equal(cached["valid"].features["text"],
                                  direct["valid"].features["text"])
    manifest = json.loads((cache / "manifest.json").read_text())
    assert str(sdk["audio"]) in manifest["source"]["files"]
    assert convert_to_cache(recipe, tmp_path / "cache") == cache  # same files: kept as it is
    write_csd(sdk["audio"], {v: frames(0.0, 2.2, 0.1, 2, seed=9)
                             for v in ("vid_a", "vid_b", "vid_c")})
    with pytest.raises(DatasetError, match="another cache already exists"):
        convert_to_cache(recipe, tmp_path / "cache")  # a feature file changed


def test_a_recipe_reads_nan_features_as_zero_when_it_says_so(sdk, tmp_path):
    features, intervals = frames(0.0, 2.2, 0.1, 2, seed=0)
    features[2, 1] = np.nan
    write_csd(sdk["audio"], {v: (features, intervals) for v in ("vid_a", "vid_b", "vid_c")})
    with pytest.raises(DatasetError, match="NaN"):
        load_dataset(_recipe(tmp_path, sdk))
    train = load_dataset(_recipe(tmp_path, sdk, nan="zero"))["train"]
    assert np.isfinite(train.features["audio"]).all()
    with pytest.raises(DatasetError, match="wrong type for 'nan'") as info:
        load_dataset(_recipe(tmp_path, sdk, nan=0))
    assert info.value.field == "nan"


def test_dhmd_convert_and_describe_a_recipe(sdk, tmp_path, capsys):
    recipe = _recipe(tmp_path, sdk)
    assert main(["convert", str(recipe), str(tmp_path / "cache")]) == 0
    assert main(["describe", str(tmp_path / "cache")]) == 0
    assert "train: 2 samples" in capsys.readouterr().out
    (tmp_path / "recipe.json").write_text(json.dumps({"labels": "labels.csd", "folds": "mosi",
                                                      "features": {"text": "words.csd"},
                                                      "colapse": "mean"}))
    assert main(["convert", str(recipe), str(tmp_path / "other")]) == 2
    error = capsys.readouterr().err
    assert "unknown key 'colapse' (file" in error and "Traceback" not in error


@pytest.mark.parametrize("recipe, field", [
    ({"labels": "labels.csd", "folds": "mosi"}, "features"),
    ({"labels": 3, "features": {"text": "words.csd"}, "folds": "mosi"}, "labels"),
    ({"labels": "labels.csd", "features": [], "folds": "mosi"}, "features"),
    ({"labels": "labels.csd", "features": {"text": "w.csd"}, "folds": "mosi",
      "label_range": [0]}, "label_range"),
    ({"labels": "labels.csd", "features": {"text": "w.csd"}, "folds": "mosi",
      "label_column": "sentiment"}, "label_column"),
])
def test_bad_recipes(tmp_path, recipe, field):
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(recipe))
    with pytest.raises(DatasetError) as info:
        load_dataset(path)
    assert info.value.field == field and str(path) in str(info.value)


def test_alignment_reads_through_the_checked_reader(sdk, tmp_path):
    """align_csd reads every .csd through CSDReader: another file's bytes (external
    storage) and a declared size beyond the file are refused, naming the entry."""
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(44, dtype=np.float64).tobytes())
    external = tmp_path / "external.csd"
    with h5py.File(external, "w") as handle:
        for video in ("vid_a", "vid_b", "vid_c"):
            entry = handle.create_group(f"COVAREP/data/{video}")
            entry.create_dataset("features", shape=(22, 2), dtype="f8",
                                 external=[(str(secret), 0, 352)])
            entry["intervals"] = frames(0.0, 2.2, 0.1, 2, seed=0)[1]
    with pytest.raises(DatasetError, match="stored in other files") as info:
        align_csd({"audio": external}, sdk["labels"], folds=FOLDS)
    assert info.value.field == "COVAREP/data/vid_a/features"


def _refused(capsys, recipe, cache, *needles, file=None):
    """`dhmd describe` and `dhmd convert` refuse the recipe: exit 2, one line naming the
    file (the recipe unless given) and each needle, no traceback, nothing written."""
    for argv in (["describe", str(recipe)], ["convert", str(recipe), str(cache)]):
        assert main(argv) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and "Traceback" not in error, error
        for needle in (f"file '{file or recipe}'", *needles):
            assert needle in error, error
    assert sorted(p.name for p in cache.parent.iterdir() if p.name.startswith(".")) == []
    assert not cache.exists()


@pytest.mark.parametrize("extra, needles", [
    ({"folds": 3}, ["field 'folds'", "found a number 3"]),
    ({"folds": ["vid_a"]}, ["field 'folds'", "found a list"]),
    ({"reduction": 3}, ["field 'reduction'", "found a number 3"]),
    ({"reduction": None}, ["field 'reduction'", "found null"]),
    ({"reduction": ["mean"]}, ["field 'reduction'", "found a list"]),
    ({"features": {"../../evil": "words.csd"}}, ["field 'features.../../evil'",
                                                  "not a modality name"]),
    ({"max_steps": {"vision": 3}}, ["field 'max_steps.vision'"]),
    ({"max_steps": True}, ["field 'max_steps'", "a boolean"]),
    ({"label_column": -1}, ["field 'label_column'"]),
    ({"reference": "vision"}, ["field 'reference'"]),
])
def test_malformed_recipe_values_are_named(sdk, tmp_path, capsys, extra, needles):
    _refused(capsys, _recipe(tmp_path, sdk, **extra), tmp_path / "cache", *needles)


def test_a_missing_recipe_key_is_named(sdk, tmp_path, capsys):
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({"labels": "labels.csd", "features": {"text": "words.csd"}}))
    _refused(capsys, recipe, tmp_path / "cache", "missing key 'folds'", "field 'folds'")


def test_a_deeply_nested_recipe_is_refused(tmp_path, capsys):
    recipe = tmp_path / "recipe.json"
    recipe.write_text("[" * 100_000 + "]" * 100_000)
    _refused(capsys, recipe, tmp_path / "cache", "nested too deeply")


@pytest.mark.parametrize("which", ["labels", "folds"])
def test_a_fifo_named_by_a_recipe_is_refused_without_blocking(sdk, tmp_path, capsys, which):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # no writer: reading it would block forever
    recipe = _recipe(tmp_path, sdk, **{which: "pipe"})
    _refused(capsys, recipe, tmp_path / "cache", "named pipe (FIFO)", file=fifo)


def test_a_recipe_that_names_the_unaligned_layout_is_accepted(sdk, tmp_path, capsys):
    recipe = _recipe(tmp_path, sdk, reference=None, reduction=None, max_steps={"audio": 5},
                     label_range=None, folds=FOLDS)
    assert main(["convert", str(recipe), str(tmp_path / "cache")]) == 0
    train = load_dataset(tmp_path / "cache")["train"]
    assert train.features["audio"].shape[1] == 5 and train.features["text"].shape[1] == 3


def test_a_linked_recipe_file_out_of_the_folder_is_reported(sdk, tmp_path):
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    recipe = json.loads(_recipe(tmp_path, sdk).read_text())
    for name in ("labels.csd", "words.csd", "audio.csd", "folds.json"):
        (folder / name).symlink_to(tmp_path / name)
    (folder / "recipe.json").write_text(json.dumps(recipe))
    with pytest.warns(OutsideFolderWarning) as caught:
        assert load_dataset(folder / "recipe.json")["train"].ids == ["vid_a[0]", "vid_a[1]"]
    reported = {str(w.message).split("'")[1] for w in caught}
    assert reported == {str(folder / name) for name in ("labels.csd", "words.csd", "audio.csd",
                                                         "folds.json")}


# The structure of the real CMU_MOSI_Opinion_Labels.csd: the 93 videos of the standard
# folds, 2,199 segments (1,284 / 229 / 686 in train / valid / test), ids 'v[k]' for row k,
# and 93 pairs of consecutive segments that overlap, in 52 of the videos, by up to 7.03 s.
MOSI_SEGMENTS = {"train": 1284, "valid": 229, "test": 686}
MOSI_OVERLAPS, MOSI_OVERLAPPING_VIDEOS, MOSI_LARGEST_OVERLAP = 93, 52, 7.03


def mosi_like_segments(seed: int = 0) -> dict[str, np.ndarray]:
    """Per video of the standard CMU-MOSI folds, its labelled segments ``(k, 2)`` in row
    order: the real file's counts and overlaps (see above), other segments 0.2-1.5 s apart."""
    rng = np.random.default_rng(seed)
    folds = load_folds("mosi")
    counts = {}
    for split, videos in folds.items():  # the split's segments spread over its videos
        share = np.full(len(videos), MOSI_SEGMENTS[split] // len(videos))
        share[: MOSI_SEGMENTS[split] % len(videos)] += 1
        counts |= dict(zip(videos, share.tolist(), strict=True))
    videos = sorted(counts)
    overlapping = rng.choice(len(videos), MOSI_OVERLAPPING_VIDEOS, replace=False)
    pairs = {videos[i]: 1 for i in overlapping}
    for i in rng.choice(overlapping, MOSI_OVERLAPS - MOSI_OVERLAPPING_VIDEOS, replace=False):
        pairs[videos[i]] += 1  # 41 videos with two overlapping pairs, 11 with one
    sizes = rng.uniform(0.05, MOSI_LARGEST_OVERLAP, MOSI_OVERLAPS)
    sizes[0] = MOSI_LARGEST_OVERLAP
    sizes = iter(sizes.tolist())
    segments = {}
    for video in videos:
        overlaps = set(rng.choice(counts[video] - 1, pairs.get(video, 0), replace=False).tolist())
        start, rows = rng.uniform(0.0, 2.0), []
        for k in range(counts[video]):
            end = start + rng.uniform(8.0, 12.0)  # longer than the largest overlap
            rows.append([round(start, 2), round(end, 2)])
            start = end - next(sizes) if k in overlaps else end + rng.uniform(0.2, 1.5)
        segments[video] = np.array(rows)
    return segments


def test_the_real_mosi_label_structure_aligns_with_the_standard_folds(tmp_path):
    segments = mosi_like_segments()
    overlap = {v: rows[:-1, 1] - rows[1:, 0] for v, rows in segments.items()}  # > 0: overlap
    assert sum(int((o > 0).sum()) for o in overlap.values()) == MOSI_OVERLAPS
    assert sum(bool((o > 0).any()) for o in overlap.values()) == MOSI_OVERLAPPING_VIDEOS
    assert max(o.max() for o in overlap.values()) == pytest.approx(MOSI_LARGEST_OVERLAP, abs=0.01)
    rng = np.random.default_rng(1)
    labels = {v: (rng.uniform(-3, 3, size=(len(rows), 1)), rows) for v, rows in segments.items()}
    audio = {v: frames(0.0, rows[:, 1].max() + 1.0, 0.5, 2, seed=i)
             for i, (v, rows) in enumerate(segments.items())}
    words = {v: frames(0.0, rows[:, 1].max() + 1.0, 0.4, 3, seed=i + 100)
             for i, (v, rows) in enumerate(segments.items())}
    write_csd(tmp_path / "labels.csd", labels, "Opinion Segment Labels")
    write_csd(tmp_path / "audio.csd", audio, "COVAREP")
    write_csd(tmp_path / "words.csd", words, "glove_vectors")
    features = {"text": tmp_path / "words.csd", "audio": tmp_path / "audio.csd"}
    for reference in (None, "text"):
        datasets = align_csd(features, tmp_path / "labels.csd", folds="mosi", reference=reference)
        assert {split: len(d) for split, d in datasets.items()} == MOSI_SEGMENTS
    folds = load_folds("mosi")
    for split, dataset in datasets.items():  # word-aligned: each segment's own words
        assert sorted({i.rsplit("[", 1)[0] for i in dataset.ids}) == sorted(folds[split])
        index = {sample: i for i, sample in enumerate(dataset.ids)}
        for video in folds[split][:4]:
            for k, (start, end) in enumerate(segments[video]):
                assert dataset.lengths["text"][index[f"{video}[{k}]"]] == len(
                    _within(words[video][1], start, end))
    # In an overlapping pair, the rows of the overlap are in both segments.
    video = max(overlap, key=lambda v: overlap[v].max())
    k = int(overlap[video].argmax())
    sequences = align_csd({"audio": tmp_path / "audio.csd"}, tmp_path / "labels.csd",
                          folds="mosi")
    dataset = next(d for d in sequences.values() if f"{video}[{k}]" in d.ids)
    first, second = (dataset.ids.index(f"{video}[{j}]") for j in (k, k + 1))
    shared = set(_within(audio[video][1], *segments[video][k])) & set(
        _within(audio[video][1], *segments[video][k + 1]))
    assert len(shared) >= 13  # 7.03 s of 0.5 s frames
    rows_of = {i: _within(audio[video][1], *segments[video][j])
               for i, j in ((first, k), (second, k + 1))}
    for i, rows in rows_of.items():
        np.testing.assert_allclose(dataset.features["audio"][i, : len(rows)],
                                   audio[video][0][rows], rtol=1e-6)
