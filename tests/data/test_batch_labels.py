"""Labels of every kind in MultimodalDataset: scores, class indices, multi-hot rows."""

import numpy as np
import pytest
import torch

from dhmd_graph.data import MultimodalDataset, collate, load_cache, write_cache
from dhmd_graph.data.errors import DatasetError


def make_dataset(labels, **options):
    rng = np.random.default_rng(0)
    n = len(labels)
    return MultimodalDataset(
        {"text": rng.normal(size=(n, 3, 2)).astype(np.float32)}, {"text": np.full(n, 3)},
        labels, [f"clip{i}" for i in range(n)], source="file.pkl", split="valid", **options)


def test_class_indices_are_stored_and_collated_as_int64():
    dataset = make_dataset(np.array([2.0, 0.0, 1.0, 2.0]), label_kind="class", num_classes=3,
                           label_names=["negative", "neutral", "positive"])
    assert dataset.labels.dtype == np.int64 and dataset.labels.tolist() == [2, 0, 1, 2]
    assert dataset.num_classes == 3 and dataset.label_names == ("negative", "neutral", "positive")
    batch = collate([dataset[i] for i in (3, 1)])
    assert batch.labels.dtype == torch.long and batch.labels.tolist() == [2, 0]
    assert len(batch) == 2


def test_multi_hot_rows_are_stored_and_collated_as_float_rows():
    rows = np.array([[1, 0, 0, 1], [0, 0, 0, 0], [1, 1, 1, 1]], dtype=bool)
    dataset = make_dataset(rows, label_kind="multi_hot")
    assert dataset.labels.dtype == np.float32 and dataset.num_classes == 4
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, collate_fn=collate)
    first, second = list(loader)
    assert first.labels.dtype == torch.float32 and first.labels.shape == (2, 4)
    assert first.labels.tolist() == [[1, 0, 0, 1], [0, 0, 0, 0]]
    assert second.labels.shape == (1, 4) and len(second) == 1


def test_scores_stay_float32_vectors():
    dataset = make_dataset([0.5, -1.25])
    assert dataset.label_kind == "score" and dataset.num_classes is None
    labels = collate([dataset[0], dataset[1]]).labels
    assert labels.dtype == torch.float32 and labels.tolist() == [0.5, -1.25]


# (labels, options, problem, found) -> one DatasetError naming file, split and field.
BAD = {
    "class out of range": ([0, 3, 1, 3], {"label_kind": "class", "num_classes": 3},
                           "class index out of range", "3 at sample 1 ('clip1') (2 such labels)"),
    "negative class": ([0, -1], {"label_kind": "class", "num_classes": 2},
                       "class index out of range", "-1 at sample 1"),
    "fractional class": ([0.0, 1.5], {"label_kind": "class", "num_classes": 3},
                         "class index out of range", "1.5 at sample 1"),
    "NaN class": ([0.0, np.nan], {"label_kind": "class", "num_classes": 3},
                  "NaN or infinite label", "nan at sample 1"),
    "NaN score": ([0.5, np.nan, 1.0], {}, "NaN or infinite label", "nan at sample 1 ('clip1')"),
    "infinite score": ([np.inf], {}, "NaN or infinite label", "inf at sample 0"),
    "score matrix": (np.zeros((2, 3)), {}, "wrong score labels", "shape (2, 3)"),
    "class matrix": (np.zeros((2, 2)), {"label_kind": "class", "num_classes": 2},
                     "wrong class labels", "shape (2, 2)"),
    "multi-hot vector": ([0, 1], {"label_kind": "multi_hot"}, "wrong multi_hot labels",
                         "shape (2,)"),
    "multi-hot value 2": ([[0, 1], [2, 0]], {"label_kind": "multi_hot"},
                          "multi-hot label other than 0/1", "[2, 0] at sample 1"),
    "multi-hot value 0.5": ([[0.5, 1]], {"label_kind": "multi_hot"},
                            "multi-hot label other than 0/1", "[0.5, 1.0] at sample 0"),
    "NaN multi-hot": ([[0, np.nan]], {"label_kind": "multi_hot"}, "NaN or infinite label",
                      "[0.0, nan] at sample 0"),
    "multi-hot width": ([[0, 1, 1]], {"label_kind": "multi_hot", "num_classes": 4},
                        "multi-hot labels of another width", "3 columns"),
    "text labels": (np.array(["a", "b"]), {}, "wrong score labels", "dtype <U1"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_labels_give_one_clear_dataset_error(case):
    labels, options, problem, found = BAD[case]
    with pytest.raises(DatasetError) as info:
        make_dataset(labels, label_field="emotions", **options)
    error = info.value
    assert (error.file, error.split, error.field) == ("file.pkl", "valid", "emotions")
    assert error.problem == problem and found in error.found
    assert error.expected and error.fix


def test_label_names_must_match_the_classes():
    with pytest.raises(DatasetError, match=r"field 'label_names'.*expected 3 names.*found 2 names"):
        make_dataset([0, 1], label_kind="class", num_classes=3, label_names=["a", "b"])
    with pytest.raises(DatasetError, match="expected no names"):
        make_dataset([0.5], label_names=["sentiment"])


def test_bad_label_options_are_value_errors():
    with pytest.raises(ValueError, match=r"MultimodalDataset.label_kind: expected one of"):
        make_dataset([0], label_kind="ordinal")
    with pytest.raises(ValueError, match=r"MultimodalDataset.num_classes: class labels need"):
        make_dataset([0, 1], label_kind="class")


@pytest.mark.parametrize("labels, options", [
    ([2, 0, 1], {"label_kind": "class", "num_classes": 4, "label_names": list("abcd")}),
    ([[0, 1], [1, 1], [0, 0]], {"label_kind": "multi_hot", "label_names": ["joy", "fear"]}),
])
def test_the_cache_keeps_the_label_kind(tmp_path, labels, options):
    dataset = make_dataset(labels, label_field="emotions", **options)
    cached = load_cache(write_cache({"valid": dataset}, tmp_path / "cache"))["valid"]
    assert (cached.label_kind, cached.num_classes, cached.label_names, cached.label_field) == (
        dataset.label_kind, dataset.num_classes, dataset.label_names, "emotions")
    assert cached.labels.dtype == dataset.labels.dtype
    np.testing.assert_array_equal(cached.labels, dataset.labels)


def test_class_counts_and_names_are_bounded():
    from dhmd_graph.data.labels import MAX_CLASSES

    with pytest.raises(DatasetError, match=f"too many classes.*at most {MAX_CLASSES}"):
        make_dataset(np.array([0, 1]), label_kind="class", num_classes=MAX_CLASSES + 1)
    with pytest.raises(DatasetError, match="too many classes"):
        make_dataset(np.zeros((2, MAX_CLASSES + 1)), label_kind="multi_hot")
    for name in ("../../evil", ".hidden", "a/b", ""):
        with pytest.raises(DatasetError, match="not a modality or field name") as caught:
            MultimodalDataset({name: np.zeros((1, 2, 3), np.float32)}, {name: np.array([2])},
                              np.zeros(1), ["a"], source="file.pkl")
        assert caught.value.file == "file.pkl"
