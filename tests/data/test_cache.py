import json
import pickle

import numpy as np
import pytest
import torch

from dhmd_graph.data import (
    MultimodalDataset,
    collate,
    convert_to_cache,
    load_cache,
    load_mmsa,
    write_cache,
)
from dhmd_graph.data import cache as cache_module
from dhmd_graph.data.errors import DatasetError


@pytest.fixture
def pickle_path(write_pickle, make_mmsa):
    data = make_mmsa(aligned=False, sims=True)
    data["train"]["modality_reliability"] = np.eye(5, 3, dtype=np.float32)[::-1]
    return write_pickle(data)


@pytest.fixture
def cache_dir(tmp_path, pickle_path):
    return convert_to_cache(pickle_path, tmp_path / "cache")


def test_round_trip_equals_the_pickle_reader(pickle_path, cache_dir):
    expected, cached = load_mmsa(pickle_path), load_cache(cache_dir)
    assert list(cached) == list(expected)
    for split, dataset in cached.items():
        reference = expected[split]
        assert dataset.modalities == reference.modalities
        for name in dataset.modalities:
            array = dataset.features[name]
            assert isinstance(array, np.memmap) and not array.flags.writeable
            assert array.dtype == reference.features[name].dtype
            np.testing.assert_array_equal(array, reference.features[name])
            np.testing.assert_array_equal(dataset.lengths[name], reference.lengths[name])
            np.testing.assert_array_equal(dataset.unimodal_labels[name],
                                          reference.unimodal_labels[name])
        np.testing.assert_array_equal(dataset.labels, reference.labels)
        assert set(dataset.extras) == set(reference.extras) == (
            {"modality_reliability"} if split == "train" else set())
        for name, extra in dataset.extras.items():
            np.testing.assert_array_equal(extra, reference.extras[name])
        assert dataset.ids == reference.ids and dataset.raw_text == reference.raw_text
        assert dataset.split == split and dataset.source == str(cache_dir)


def test_manifest_records_shapes_checksums_and_source(pickle_path, cache_dir):
    manifest = json.loads((cache_dir / "manifest.json").read_text())
    assert manifest["source"]["path"] == str(pickle_path.resolve())
    assert manifest["source"]["bytes"] == pickle_path.stat().st_size
    audio = manifest["splits"]["valid"]["files"]["features.audio.npy"]
    assert audio["shape"] == [3, 12, 4] and audio["dtype"] == "<f4"
    assert audio["sha256"] == cache_module.sha256_file(cache_dir / "valid" / "features.audio.npy")
    assert manifest["splits"]["train"]["num_samples"] == 5


def test_token_ids_and_vocabulary_survive(tmp_path):
    dataset = MultimodalDataset(
        {"text": np.array([[2, 3, 0], [4, 0, 0]]), "audio": np.ones((2, 3, 2), np.float32)},
        {"text": [2, 1], "audio": [3, 3]}, np.array([0.5, -1.0]), ["a", "b"],
        vocabulary=["<pad>", "<unk>", "x", "y", "z"], split="train")
    cached = load_cache(write_cache({"train": dataset}, tmp_path / "cache"))["train"]
    assert cached.features["text"].dtype == np.int64
    assert cached.vocabulary == dataset.vocabulary and cached.raw_text is None
    assert collate([cached[0], cached[1]]).features["text"].tolist() == [[2, 3], [4, 0]]


def test_dataloader_over_the_cache(cache_dir):
    train = load_cache(cache_dir)["train"]
    loader = torch.utils.data.DataLoader(train, batch_size=2, collate_fn=collate)
    batches = list(loader)
    assert [len(b) for b in batches] == [2, 2, 1]
    assert batches[0].features["audio"].shape[1] == int(train.lengths["audio"][:2].max())
    assert set(batches[0].unimodal_labels) == {"text", "audio", "vision"}


def test_same_source_is_a_no_op_and_another_is_refused(tmp_path, write_pickle, make_mmsa,
                                                       pickle_path, cache_dir):
    manifest = cache_dir / "manifest.json"
    stamp = manifest.stat().st_mtime_ns
    assert convert_to_cache(pickle_path, cache_dir) == cache_dir
    assert manifest.stat().st_mtime_ns == stamp
    other = write_pickle(make_mmsa(), "other.pkl")
    with pytest.raises(DatasetError, match="another cache already exists"):
        convert_to_cache(other, cache_dir)
    assert manifest.stat().st_mtime_ns == stamp
    convert_to_cache(other, cache_dir, overwrite=True)
    assert load_cache(cache_dir)["train"].unimodal_labels == {}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "data.pkl", "other.pkl"]


def test_refuses_to_replace_a_folder_that_is_not_a_cache(tmp_path, pickle_path):
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not a dataset cache"):
        convert_to_cache(pickle_path, folder, overwrite=True)
    assert (folder / "keep.txt").read_text() == "mine"


def test_failed_conversion_leaves_nothing(tmp_path, pickle_path, monkeypatch):
    digests = []
    real_sha256 = cache_module.sha256_file

    def fail_on_the_third_file(path):
        digests.append(path)
        if len(digests) == 3:
            raise OSError("disk full")
        return real_sha256(path)

    monkeypatch.setattr(cache_module, "sha256_file", fail_on_the_third_file)
    with pytest.raises(OSError, match="disk full"):
        cache_module.write_cache(load_mmsa(pickle_path), tmp_path / "cache")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.pkl"]


def test_invalid_source_writes_nothing(tmp_path, write_pickle, make_mmsa):
    data = make_mmsa()
    data["test"]["regression_labels"][0] = 7.0
    with pytest.raises(DatasetError, match="label outside"):
        convert_to_cache(write_pickle(data), tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def _truncate(path):
    path.write_bytes(path.read_bytes()[:100])


def _reshape(path):
    np.save(path, np.load(path)[:2])


@pytest.mark.parametrize("damage, found", [
    (lambda p: p.unlink(), "No such file"),
    (_truncate, "cannot open a cache file"),
    (_reshape, "found shape [2, 12, 4]"),
])
def test_damaged_files_are_reported(cache_dir, damage, found):
    path = cache_dir / "train" / "features.audio.npy"
    damage(path)
    with pytest.raises(DatasetError) as info:
        load_cache(cache_dir)
    assert found in str(info.value) and info.value.split == "train"
    assert "features.audio.npy" in str(info.value)


def test_verify_detects_changed_bytes(cache_dir):
    path = cache_dir / "test" / "features.vision.npy"
    array = np.load(path)
    array[0, 0, 0] += 1.0
    np.save(path, array)
    load_cache(cache_dir)  # shapes and dtypes still agree
    with pytest.raises(DatasetError, match="checksum mismatch"):
        load_cache(cache_dir, verify=True)


@pytest.mark.parametrize("manifest, found", [
    ("{not json", "unreadable cache manifest"),
    ('{"format": "something/else"}', "unknown cache format"),
    ('{"format": "dhmd_graph.cache/1"}', "incomplete cache manifest"),
])
def test_bad_manifest(cache_dir, manifest, found):
    (cache_dir / "manifest.json").write_text(manifest)
    with pytest.raises(DatasetError, match=found):
        load_cache(cache_dir)


def test_folder_without_manifest(tmp_path):
    with pytest.raises(DatasetError, match="not a dataset cache"):
        load_cache(tmp_path)


def test_pickled_cache_dataset_refers_to_the_files(cache_dir):
    # What DataLoader workers started with spawn/forkserver receive.
    train = load_cache(cache_dir)["train"]
    data = pickle.dumps(train)
    assert train.features["text"][0].tobytes() not in data  # no copy of the features
    copy = pickle.loads(data)
    for name in train.modalities:
        assert isinstance(copy.features[name], np.memmap) and not copy.features[name].flags.writeable
        np.testing.assert_array_equal(copy.features[name], train.features[name])
    assert copy.ids == train.ids and repr(copy) == repr(train)


def test_pickled_memmap_slice_travels_by_value(tmp_path):
    path = tmp_path / "audio.npy"
    np.save(path, np.arange(24, dtype=np.float32).reshape(4, 3, 2))
    part = np.load(path, mmap_mode="r")[1:3]  # a memmap whose offset is its parent's
    dataset = MultimodalDataset({"audio": part}, {"audio": [3, 3]}, [0.0, 1.0], ["a", "b"])
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(dataset)).features["audio"], part)
