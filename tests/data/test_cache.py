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


def _manifest(cache_dir):
    return json.loads((cache_dir / "manifest.json").read_text())


def test_manifest_records_the_label_range_checked_on_every_read(cache_dir):
    assert _manifest(cache_dir)["label_range"] == [-1.0, 1.0]  # CH-SIMS, by its labels
    path = cache_dir / "valid" / "unimodal.audio.npy"
    np.save(path, np.full(np.load(path).shape, 1.5, np.float32))
    with pytest.raises(DatasetError, match="label outside the label range") as info:
        load_cache(cache_dir)
    assert info.value.field == "unimodal.audio" and info.value.split == "valid"


def test_write_cache_refuses_labels_out_of_range(tmp_path, pickle_path):
    datasets = load_mmsa(pickle_path)
    with pytest.raises(DatasetError, match="label outside"):
        write_cache(datasets, tmp_path / "cache", label_range=(0.0, 0.5))
    assert not (tmp_path / "cache").exists()


def test_verify_checks_values_and_token_ids(tmp_path, cache_dir):
    path = cache_dir / "train" / "features.vision.npy"
    array = np.load(path)
    array[1, 2, 0] = np.inf
    np.save(path, array)
    entry = _manifest(cache_dir)
    entry["splits"]["train"]["files"]["features.vision.npy"]["sha256"] = \
        cache_module.sha256_file(path)  # a consistent manifest: only the values tell
    (cache_dir / "manifest.json").write_text(json.dumps(entry))
    train = load_cache(cache_dir)["train"]
    with pytest.raises(DatasetError, match="NaN or infinite values.*sample 1"):
        train[1]  # an unverified read still never hands out the value
    with pytest.raises(DatasetError, match="NaN or infinite values") as info:
        load_cache(cache_dir, verify=True)
    assert info.value.file == str(path)

    dataset = MultimodalDataset({"text": np.array([[2, 5, 0]]), "audio": np.zeros((1, 3, 2))},
                                {"text": [2], "audio": [3]}, [0.0], ["a"], vocabulary=["a"] * 4)
    tokens = load_cache(write_cache({"train": dataset}, tmp_path / "tokens"), verify=False)
    assert tokens["train"].vocabulary == ["a"] * 4
    with pytest.raises(DatasetError, match=r"token id outside the vocabulary.*\[0, 4\)"):
        load_cache(tmp_path / "tokens", verify=True)


@pytest.mark.parametrize("change, found", [
    (lambda m: m["splits"].update({"../x": m["splits"]["test"]}), "bad split name"),
    (lambda m: m["splits"]["test"]["files"].pop("labels.npy"), "expected the files"),
    (lambda m: m["splits"]["test"].update(modalities="text"), "lists of names"),
    (lambda m: m.update(label_range="wide"), "'label_range' two numbers"),
])
def test_manifest_layout_is_checked(cache_dir, change, found):
    manifest = _manifest(cache_dir)
    change(manifest)
    (cache_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match="incomplete cache manifest") as info:
        load_cache(cache_dir)
    assert found in str(info.value)


@pytest.mark.parametrize("strings, found", [
    ('{"ids": 5, "raw_text": null, "vocabulary": null}', "'ids' a list of strings"),
    ("[1]", "list with keys -"),
    ("\\xff", "cannot read a cache file"),
])
def test_strings_file_is_checked(cache_dir, strings, found):
    (cache_dir / "train" / "strings.json").write_text(strings)
    with pytest.raises(DatasetError, match="cannot read a cache file") as info:
        load_cache(cache_dir)
    assert found in str(info.value)


def test_features_of_the_wrong_kind_are_refused(cache_dir):
    path = cache_dir / "train" / "lengths.text.npy"
    lengths = np.load(path).astype(np.float32)
    np.save(path, lengths)
    manifest = _manifest(cache_dir)
    manifest["splits"]["train"]["files"]["lengths.text.npy"]["dtype"] = "<f4"
    (cache_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match="wrong kind of array.*a \\(N,\\) int64 array"):
        load_cache(cache_dir)


def test_splits_of_other_widths_are_refused(tmp_path, pickle_path):
    datasets = load_mmsa(pickle_path)
    valid = datasets["valid"]
    narrow = MultimodalDataset({**valid.features, "audio": valid.features["audio"][..., :2]},
                               valid.lengths, valid.labels, valid.ids, split="valid")
    with pytest.raises(DatasetError, match="disagree on their modalities|feature widths"):
        write_cache({"train": datasets["train"], "valid": narrow}, tmp_path / "cache")


# Strict reads of every label kind and of extras (caches written by the same writer). ####

def _kinds_splits(kind):
    rng = np.random.default_rng(1)
    splits = {}
    for split, n in (("train", 6), ("valid", 3), ("test", 3)):
        labels = (rng.integers(0, 4, n) if kind == "class"
                  else rng.integers(0, 2, (n, 3)).astype(np.float32))
        splits[split] = MultimodalDataset(
            {"text": rng.normal(size=(n, 4, 2)).astype(np.float32)}, {"text": np.full(n, 4)},
            labels, [f"{split}{i}" for i in range(n)], label_kind=kind,
            num_classes=4 if kind == "class" else None,
            extras={"modality_reliability": rng.random((n, 3)).astype(np.float32),
                    "corrupted": rng.integers(0, 2, n).astype(bool)},
            split=split)
    return splits


@pytest.mark.parametrize("kind", ["class", "multi_hot"])
def test_label_kinds_and_extras_pass_the_strict_checks(tmp_path, kind):
    splits = _kinds_splits(kind)
    cache = write_cache(splits, tmp_path / "cache")
    for verify in (False, True):
        read = load_cache(cache, verify=verify)
        for split, dataset in splits.items():
            assert read[split].label_kind == kind
            np.testing.assert_array_equal(read[split].labels, dataset.labels)
            assert set(read[split].extras) == {"modality_reliability", "corrupted"}
            np.testing.assert_array_equal(read[split].extras["corrupted"],
                                          dataset.extras["corrupted"])
    assert _manifest(cache)["splits"]["train"]["labels"]["kind"] == kind


def test_labels_of_another_kind_than_the_manifest_are_refused(tmp_path):
    cache = write_cache(_kinds_splits("class"), tmp_path / "cache")
    path = cache / "valid" / "labels.npy"
    np.save(path, np.load(path).astype(np.float32))  # class indices turned into scores
    manifest = _manifest(cache)
    manifest["splits"]["valid"]["files"]["labels.npy"]["dtype"] = "<f4"
    (cache / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match="labels of another kind") as info:
        load_cache(cache)
    assert info.value.file == str(path)


def test_a_class_index_out_of_range_is_refused_on_every_read(tmp_path):
    cache = write_cache(_kinds_splits("class"), tmp_path / "cache")
    path = cache / "test" / "labels.npy"
    labels = np.load(path)
    labels[1] = 9
    np.save(path, labels)  # same shape and dtype: only the values tell
    with pytest.raises(DatasetError, match=r"class index out of range.*9 at sample 1"):
        load_cache(cache)


@pytest.mark.parametrize("change, found", [
    (lambda split: split.update(extras=["other"]), "expected the files"),
    (lambda split: split.update(extras="modality_reliability"), "'extras' must be a list"),
    (lambda split: split["labels"].update(kind="ordinal"), "'labels' must be a mapping"),
    (lambda split: split["labels"].update(num_classes=None), "'num_classes'"),
])
def test_manifest_entries_of_extras_and_labels_are_checked(tmp_path, change, found):
    cache = write_cache(_kinds_splits("class"), tmp_path / "cache")
    manifest = _manifest(cache)
    change(manifest["splits"]["train"])
    (cache / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match="incomplete cache manifest") as info:
        load_cache(cache)
    assert found in str(info.value)


def test_an_extra_of_strings_is_refused(tmp_path):
    cache = write_cache(_kinds_splits("multi_hot"), tmp_path / "cache")
    path = cache / "train" / "extra.corrupted.npy"
    np.save(path, np.array(["yes"] * 6))
    manifest = _manifest(cache)
    manifest["splits"]["train"]["files"]["extra.corrupted.npy"]["dtype"] = np.load(path).dtype.str
    (cache / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match=r"wrong kind of array.*\(N, \.\.\.\) array of numbers"):
        load_cache(cache)


def test_a_plain_arrays_folder_converts_with_any_finite_score(tmp_path):
    from dhmd_graph.data import write_arrays

    splits = {split: MultimodalDataset(
        {"text": np.ones((2, 3, 2), np.float32)}, {"text": [3, 3]}, [-10.0, 10.0],
        [f"{split}0", f"{split}1"], split=split) for split in ("train", "valid", "test")}
    folder = write_arrays(splits, tmp_path / "arrays")  # any finite score
    assert _manifest(convert_to_cache(folder, tmp_path / "c1"))["label_range"] is None


_KILLED_CONVERT = """
import os, signal, sys
from dhmd_graph.data import cache, convert_to_cache
target = getattr(cache, sys.argv[3])
def killed(*args, **kwargs):
    if sys.argv[3] == "_write_split":
        target(*args, **kwargs)  # a split written, then killed
    os.kill(os.getpid(), signal.SIGKILL)
setattr(cache, sys.argv[3], killed)
if sys.argv[3] == "_replace":  # killed between moving the old cache aside and the new in
    real = os.replace
    def replace(source, destination):
        real(source, destination)
        if str(destination).endswith("cache") and ".old." in str(destination):
            os.kill(os.getpid(), signal.SIGKILL)
    os.replace, cache._replace = replace, target
convert_to_cache(sys.argv[1], sys.argv[2], overwrite=True)
"""


def _hidden(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("where", ["_write_split", "_replace"])
def test_the_next_convert_cleans_up_after_a_sigkilled_one(pickle_path, cache_dir, tmp_path,
                                                           where, capsys):
    """A `convert` killed with SIGKILL (inside a split, or between moving the old cache
    aside and the new one in) leaves hidden work folders; the next `dhmd convert` removes
    them and puts a cache moved aside back, so that no data is lost."""
    import os
    import signal
    import subprocess
    import sys

    from dhmd_graph.cli import main

    before = load_cache(cache_dir)["test"].ids
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    killed = subprocess.run([sys.executable, "-c", _KILLED_CONVERT, str(pickle_path),
                             str(cache_dir), where], env=env, capture_output=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    left = _hidden(tmp_path)
    assert left and all(name.startswith(".cache.") for name in left)
    assert cache_dir.exists() == (where == "_write_split")
    live = tmp_path / ".cache.live0123"  # a conversion that is running: left alone
    live.mkdir()
    (live / ".writer").write_text("1\n")
    (tmp_path / ".cache.backup").mkdir()  # not a work folder's name: left alone
    handle = os.open(live, os.O_RDONLY)
    import fcntl

    fcntl.flock(handle, fcntl.LOCK_EX)
    try:
        assert main(["convert", str(pickle_path), str(cache_dir)]) == 0
    finally:
        os.close(handle)
    assert _hidden(tmp_path) == [".cache.backup", ".cache.live0123"]
    assert load_cache(cache_dir, verify=True)["test"].ids == before
