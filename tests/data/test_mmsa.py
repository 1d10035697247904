import numpy as np
import pytest

from dhmd_graph.data import MultimodalDataset, load_mmsa
from dhmd_graph.data.errors import DatasetError


def test_aligned_split_shapes_lengths_and_dtypes(write_pickle, make_mmsa):
    data = make_mmsa()
    datasets = load_mmsa(write_pickle(data))
    assert list(datasets) == ["train", "valid", "test"]
    train = datasets["train"]
    assert isinstance(train, MultimodalDataset)
    assert train.modalities == ("text", "audio", "vision")
    assert train.feature_dims == {"text": 6, "audio": 4, "vision": 5}
    assert len(train) == 5 and len(datasets["valid"]) == 3 and len(datasets["test"]) == 4
    for name in train.modalities:
        assert train.features[name].dtype == np.float32
        np.testing.assert_array_equal(train.features[name], data["train"][name])
    # Text lengths come from the attention-mask row of text_bert; audio/vision are full.
    np.testing.assert_array_equal(train.lengths["text"], data["train"]["text_bert"][:, 1].sum(1))
    assert train.lengths["text"].tolist() == [2, 3, 4, 5, 6]
    assert train.lengths["audio"].tolist() == [8] * 5
    assert train.ids[0] == "video0$_$0" and train.raw_text[1] == "utterance 1"
    np.testing.assert_allclose(train.labels, data["train"]["regression_labels"], rtol=1e-6)
    assert train.unimodal_labels == {}


def test_unaligned_lengths_come_from_the_length_fields(write_pickle, make_mmsa):
    data = make_mmsa(aligned=False)
    train = load_mmsa(write_pickle(data))["train"]
    assert train.features["audio"].shape == (5, 12, 4)
    np.testing.assert_array_equal(train.lengths["audio"], data["train"]["audio_lengths"])
    np.testing.assert_array_equal(train.lengths["vision"], data["train"]["vision_lengths"])
    sample = train[4]
    assert sample["features"]["audio"].shape == (data["train"]["audio_lengths"][4], 4)


def test_text_without_bert_ids_is_full_length(write_pickle, make_mmsa):
    data = make_mmsa()
    for split in data.values():
        del split["text_bert"], split["raw_text"]
    train = load_mmsa(write_pickle(data))["train"]
    assert train.lengths["text"].tolist() == [8] * 5
    assert train.raw_text is None


def test_float64_is_cast_and_audio_negative_infinity_zeroed(write_pickle, make_mmsa):
    data = make_mmsa()
    data["train"]["vision"] = data["train"]["vision"].astype(np.float64)
    data["train"]["audio"][1, 2, 3] = -np.inf
    train = load_mmsa(write_pickle(data))["train"]
    assert train.features["vision"].dtype == np.float32
    assert train.features["audio"][1, 2, 3] == 0.0
    assert np.isfinite(train.features["audio"]).all()


def test_sims_unimodal_labels_and_range(write_pickle, make_mmsa):
    data = make_mmsa(sims=True)
    train = load_mmsa(write_pickle(data))["train"]
    assert set(train.unimodal_labels) == {"text", "audio", "vision"}
    np.testing.assert_allclose(train.unimodal_labels["audio"],
                               data["train"]["regression_labels_A"], rtol=1e-6)
    data["train"]["regression_labels"][0] = 1.5  # fine for MOSI, not for CH-SIMS
    with pytest.raises(DatasetError, match=r"labels in \[-1.0, 1.0\]"):
        load_mmsa(write_pickle(data))
    assert len(load_mmsa(write_pickle(data), label_range=(-3, 3))["train"]) == 5


def test_modality_reliability_becomes_an_extra(write_pickle, make_mmsa):
    data = make_mmsa()
    reliability = np.array([[1, 1, 1], [0, 1, 1], [1, 0.5, 1], [1, 1, 0], [1, 1, 1]])
    data["train"]["modality_reliability"] = reliability  # float64 in the file
    datasets = load_mmsa(write_pickle(data))
    extra = datasets["train"].extras["modality_reliability"]
    assert extra.dtype == np.float32 and extra.shape == (5, 3)
    np.testing.assert_array_equal(extra, reliability.astype(np.float32))
    assert datasets["valid"].extras == {}  # optional, per split


def test_explicit_label_range(write_pickle, make_mmsa):
    with pytest.raises(DatasetError, match=r"labels in \[0, 1\]"):
        load_mmsa(write_pickle(make_mmsa()), label_range=(0, 1))


def _set(split, field, value):
    def mutate(data):
        data[split][field] = value(data[split]) if callable(value) else value
    return mutate


def _delete(split, field):
    def mutate(data):
        del data[split][field]
    return mutate


def _poke(split, field, index, value):
    def mutate(data):
        data[split][field][index] = value
    return mutate


# (mutation, split, field, text expected in the message)
INVALID = {
    "missing split": (lambda d: d.pop("valid"), "valid", None, "expected splits"),
    "missing field": (_delete("test", "audio"), "test", "audio", "missing field"),
    "wrong rank": (_set("train", "vision", lambda s: s["vision"][:, 0]), "train", "vision",
                   "shape (5, 5)"),
    "mismatched N": (_set("valid", "audio", lambda s: s["audio"][:2]), "valid",
                     "audio (features)", "3 rows (as in the labels)"),
    "text_bert shape": (_set("train", "text_bert", lambda s: s["text_bert"][:, :, :4]), "train",
                        "text_bert", "shape (N, 3, T_l)"),
    "length too long": (_set("train", "audio_lengths", np.array([8, 8, 9, 8, 8])), "train",
                        "audio_lengths", "9 at sample 2 ('video2$_$2')"),
    "length zero": (_poke("test", "text_bert", (1, 1), 0), "test", "text_lengths",
                    "1 <= length <= 8"),
    "label out of range": (_poke("train", "regression_labels", 3, 3.5), "train",
                           "regression_labels", "3.5 at sample 3"),
    "NaN label": (_poke("valid", "regression_labels", 0, np.nan), "valid", "regression_labels",
                  "nan at sample 0"),
    "NaN feature": (_poke("test", "vision", (2, 0, 0), np.nan), "test", "vision",
                    "sample 2 ('video2$_$2')"),
    "inf feature": (_poke("train", "audio", (4, 1, 1), np.inf), "train", "audio", "sample 4"),
    "empty split": (lambda d: d.__setitem__("test", {k: v[:0] for k, v in d["test"].items()}),
                    "test", "regression_labels", "0 samples"),
    "split not a dict": (lambda d: d.__setitem__("valid", [1, 2]), "valid", None,
                         "split is not a dict"),
    "reliability shape": (_set("train", "modality_reliability", np.ones((5, 2))), "train",
                          "modality_reliability", "shape (5, 2)"),
    "reliability range": (_set("valid", "modality_reliability", np.full((3, 3), 1.5)), "valid",
                          "modality_reliability", "found 1.5"),
    "non-numeric features": (_set("train", "text", np.full((5, 8, 6), "x", dtype=object)),
                             "train", "text", "dtype object"),
}


@pytest.mark.parametrize("case", list(INVALID))
def test_invalid_files_name_file_split_field(write_pickle, make_mmsa, case):
    mutate, split, field, found = INVALID[case]
    data = make_mmsa(aligned=True)
    for raw in data.values():  # give every split unaligned length fields to corrupt
        raw["audio_lengths"] = np.full(len(raw["id"]), 8)
    mutate(data)
    path = write_pickle(data)
    with pytest.raises(DatasetError) as info:
        load_mmsa(path)
    error = info.value
    assert error.file == str(path) and error.split == split
    if field is not None:
        assert error.field == field
    assert error.expected and error.fix
    assert found in str(error)


def test_truncated_and_foreign_files(tmp_path, write_pickle, make_mmsa):
    path = write_pickle(make_mmsa())
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DatasetError, match="truncated"):
        load_mmsa(path)
    with pytest.raises(DatasetError, match="not an MMSA pickle"):
        load_mmsa(write_pickle([1, 2, 3]))


def test_splits_sharing_one_object(write_pickle, make_split):
    shared = make_split(4)
    datasets = load_mmsa(write_pickle({"train": shared, "valid": shared, "test": shared}))
    for dataset in datasets.values():
        np.testing.assert_array_equal(dataset.features["text"], shared["text"])
        assert dataset.lengths["text"].tolist() == [2, 3, 4, 5]


def _with_classes(data):
    for split in data.values():
        split["classification_labels"] = (np.arange(len(split["id"])) % 3).astype(np.float32)
    return data


def test_classification_labels_read_as_three_classes(write_pickle, make_mmsa):
    splits = load_mmsa(write_pickle(_with_classes(make_mmsa(sims=True))), labels="classification")
    train = splits["train"]
    assert train.label_kind == "class" and train.num_classes == 3
    assert train.label_names == ("negative", "neutral", "positive")
    assert train.labels.dtype == np.int64 and train.labels.tolist() == [0, 1, 2, 0, 1]
    assert train.unimodal_labels == {}  # regression-only fields are not read


def test_bad_classification_labels_name_the_field(write_pickle, make_mmsa):
    data = _with_classes(make_mmsa())
    data["valid"]["classification_labels"][1] = 3.0
    with pytest.raises(DatasetError, match=r"class index out of range \(file .*split 'valid', "
                                           r"field 'classification_labels'\).*3.0 at sample 1"):
        load_mmsa(write_pickle(data), labels="classification")
    with pytest.raises(DatasetError, match="missing field.*'classification_labels'"):
        load_mmsa(write_pickle(make_mmsa()), labels="classification")
    with pytest.raises(ValueError, match="labels must be one of"):
        load_mmsa("never-read.pkl", labels="emotion")
