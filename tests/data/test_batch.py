import mmap
from pathlib import Path

import numpy as np
import pytest
import torch

import dhmd_graph.data.batch as batch_module
from dhmd_graph.data import MultimodalBatch, MultimodalDataset, collate
from dhmd_graph.data.errors import DatasetError


def make_dataset(**overrides):
    rng = np.random.default_rng(0)
    arguments = {
        "features": {"text": rng.normal(size=(4, 5, 3)).astype(np.float32),
                     "audio": rng.normal(size=(4, 7, 2))},
        "lengths": {"text": [5, 2, 3, 1], "audio": [7, 7, 1, 4]},
        "labels": np.array([-3.0, 0.0, 1.5, 3.0]),
        "ids": ["a", "b", "c", "d"],
        "unimodal_labels": {"text": np.array([0.1, 0.2, 0.3, 0.4])},
        "raw_text": ["w", "x", "y", "z"],
        "split": "train",
    }
    arguments |= overrides
    return MultimodalDataset(**arguments)


def test_getitem_crops_to_the_true_lengths():
    dataset = make_dataset()
    sample = dataset[1]
    assert sample["features"]["text"].shape == (2, 3)
    assert sample["features"]["audio"].shape == (7, 2)
    np.testing.assert_array_equal(sample["features"]["text"], dataset.features["text"][1, :2])
    assert sample["id"] == "b" and sample["raw_text"] == "x"
    assert sample["unimodal_labels"]["text"] == np.float32(0.2)
    assert dataset.modalities == ("text", "audio")
    assert dataset.feature_dims == {"text": 3, "audio": 2}
    assert repr(dataset) == "MultimodalDataset(split='train', n=4, text=(4, 5, 3), audio=(4, 7, 2))"


def test_collate_pads_to_the_longest_sample_and_masks_from_lengths():
    dataset = make_dataset()
    batch = collate([dataset[i] for i in (1, 3)])
    assert isinstance(batch, MultimodalBatch) and len(batch) == 2
    assert batch.features["text"].shape == (2, 2, 3)  # longest text in the batch is 2
    assert batch.features["audio"].shape == (2, 7, 2)
    assert batch.features["audio"].dtype == torch.float32  # float64 input is cast
    assert batch.lengths["audio"].tolist() == [7, 4]
    assert batch.mask("audio").sum(1).tolist() == [7, 4]
    assert batch.mask("text").tolist() == [[True, True], [True, False]]
    assert torch.all(batch.features["audio"][1, 4:] == 0)
    torch.testing.assert_close(batch.features["text"][0],
                               torch.from_numpy(dataset.features["text"][1, :2]))
    assert batch.labels.tolist() == [0.0, 3.0]
    assert batch.ids == ["b", "d"] and batch.raw_text == ["x", "z"]
    torch.testing.assert_close(batch.unimodal_labels["text"], torch.tensor([0.2, 0.4]))
    assert batch.modalities == ("text", "audio")


def test_extras_travel_from_the_dataset_into_the_batch():
    reliability = np.array([[1, 0], [1, 1], [0, 1], [1, 1]], dtype=np.float32)
    dataset = make_dataset(extras={"reliability": reliability})
    assert dataset[2]["extras"]["reliability"].tolist() == [0.0, 1.0]
    batch = collate([dataset[i] for i in (2, 0)])
    assert batch.extras["reliability"].dtype == torch.float32
    assert batch.extras["reliability"].tolist() == [[0.0, 1.0], [1.0, 0.0]]
    assert batch.to("cpu").extras["reliability"].tolist() == [[0.0, 1.0], [1.0, 0.0]]
    assert batch.apply(lambda t: t * 2).extras["reliability"].tolist() == [[0, 2], [2, 0]]
    assert collate([make_dataset()[0]]).extras == {}  # none by default


def test_collate_keeps_token_ids_as_long():
    dataset = make_dataset(features={"text": np.array([[5, 6, 0], [7, 0, 0]]),
                                     "audio": np.ones((2, 3, 1))},
                           lengths={"text": [2, 1], "audio": [3, 3]}, labels=[0.0, 1.0],
                           ids=["a", "b"], unimodal_labels=None, raw_text=None)
    batch = collate([dataset[0], dataset[1]])
    assert batch.features["text"].dtype == torch.long
    assert batch.features["text"].tolist() == [[5, 6], [7, 0]]
    assert batch.raw_text is None and batch.unimodal_labels == {}


def test_dataloader_and_to():
    loader = torch.utils.data.DataLoader(make_dataset(), batch_size=3, collate_fn=collate)
    first, second = list(loader)
    assert len(first) == 3 and len(second) == 1
    moved = first.to("cpu")
    assert moved is not first and torch.equal(moved.features["text"], first.features["text"])
    doubled = first.apply(lambda t: t * 2)
    assert torch.equal(doubled.lengths["text"], first.lengths["text"] * 2)


@pytest.mark.parametrize("overrides, field, found", [
    ({"labels": np.zeros(0), "ids": [], "label_field": "regression_labels"}, "regression_labels",
     "0 samples"),
    ({"ids": ["a", "b", "c"]}, "ids", "3 rows"),
    ({"lengths": {"text": [5, 2, 3, 1]}}, "lengths", "['text']"),
    ({"lengths": {"text": [5, 2, 6, 1], "audio": [7, 7, 1, 4]}}, "text_lengths",
     "6 at sample 2 ('c')"),
    ({"lengths": {"text": [5, 0, 3, 1], "audio": [7, 7, 1, 4]}}, "text_lengths", "0 at sample 1"),
    ({"features": {"text": np.zeros((4, 5, 3)), "audio": np.zeros((4,))}}, "audio",
     "shape (4,)"),
    ({"extras": {"reliability": np.ones((3, 2))}}, "reliability (extra)", "3 rows"),
])
def test_invalid_datasets(overrides, field, found):
    with pytest.raises(DatasetError) as info:
        make_dataset(source="file.pkl", **overrides)
    assert info.value.field == field and info.value.split == "train"
    assert found in str(info.value) and "file 'file.pkl'" in str(info.value)


def test_dataset_error_message_and_attributes():
    error = DatasetError("wrong rank.", file="a.pkl", split="valid", field="audio",
                         expected="(N, T, d)", found="(N, T)", fix="Re-export the field.")
    assert str(error) == ("wrong rank (file 'a.pkl', split 'valid', field 'audio'); "
                          "expected (N, T, d); found (N, T). Re-export the field.")
    assert isinstance(error, ValueError)
    assert (error.file, error.split, error.field) == ("a.pkl", "valid", "audio")
    assert str(DatasetError("empty")) == "empty."


def _resident_file_pages() -> int:
    """Bytes of file-backed pages in this process's resident set (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no RssFile in /proc/self/status")


@pytest.mark.skipif(not Path("/proc/self/status").exists() or not hasattr(mmap, "MADV_DONTNEED"),
                    reason="needs Linux's /proc and madvise")
def test_release_pages_drops_mapped_pages_but_keeps_the_data(tmp_path):
    n, steps, dim = 256, 16, 1024  # 16 MiB of float32
    path = tmp_path / "features.npy"
    np.save(path, np.random.default_rng(0).normal(size=(n, steps, dim)).astype(np.float32))
    features = np.load(path, mmap_mode="r")
    dataset = MultimodalDataset({"audio": features}, {"audio": np.full(n, steps)},
                                np.zeros(n), [str(i) for i in range(n)])
    before = np.array(features)  # maps every page of the file into this process
    mapped = _resident_file_pages()
    dataset.release_pages()
    released = mapped - _resident_file_pages()
    assert released > 0.5 * features.nbytes  # the pages left this process's RSS
    for i in range(n):  # and reading again gives the same data
        np.testing.assert_array_equal(dataset[i]["features"]["audio"], before[i])


def test_getitem_releases_pages_every_release_every_samples(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(MultimodalDataset, "release_pages", lambda self: calls.append(1))
    monkeypatch.setattr(batch_module, "RELEASE_EVERY", 4)
    dataset = MultimodalDataset({"audio": np.zeros((3, 2, 1), np.float32)},
                                {"audio": np.full(3, 2)}, np.zeros(3), ["a", "b", "c"])
    for i in range(9):
        dataset[i % 3]
    assert len(calls) == 2


def test_a_non_finite_feature_is_never_handed_out():
    features = np.zeros((3, 4, 2), np.float32)
    features[1, 2, 0] = np.nan  # within sample 1's length, as in an unverified cache
    dataset = make_dataset(features={"audio": features}, lengths={"audio": [4, 3, 2]},
                           labels=np.zeros(3), ids=["a", "b", "c"], unimodal_labels={},
                           raw_text=None, source="cache/train")
    with pytest.raises(DatasetError, match=r"NaN or infinite values.*sample 1 \('b'\)"):
        dataset[1]
    features[1, 3, 0] = np.inf  # a value past the true length (3) is padding: never read
    features[1, 2, 0] = 0.0
    assert np.isfinite(dataset[1]["features"]["audio"]).all()
