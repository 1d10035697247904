import pickle

import numpy as np
import pytest

from dhmd_graph.data import convert_to_cache, load_dataset
from dhmd_graph.data.errors import DatasetError


def _write_misa(directory):
    sample = ((np.arange(2), np.zeros((2, 47)), np.zeros((2, 74)), ["a", "b"]), np.array([[1.0]]),
              "v[0]")
    for name in ("train", "dev", "test"):
        (directory / f"{name}.pkl").write_bytes(pickle.dumps([sample]))
    return directory


def test_picks_the_reader_from_the_path(tmp_path, write_pickle, make_mmsa):
    pickle_path = write_pickle(make_mmsa())
    from_pickle = load_dataset(pickle_path)
    from_cache = load_dataset(convert_to_cache(pickle_path, tmp_path / "cache"))
    assert isinstance(from_cache["train"].features["text"], np.memmap)
    np.testing.assert_array_equal(from_cache["test"].features["vision"],
                                  from_pickle["test"].features["vision"])
    misa_dir = tmp_path / "misa"
    misa_dir.mkdir()
    from_misa = load_dataset(_write_misa(misa_dir))
    assert list(from_misa) == ["train", "valid", "test"]
    assert from_misa["valid"].vocabulary == ["<pad>", "<unk>", "a", "b"]


def test_label_range_reaches_the_reader(write_pickle, make_mmsa):
    with pytest.raises(DatasetError, match=r"labels in \[-1, 1\]"):
        load_dataset(write_pickle(make_mmsa()), label_range=(-1, 1))


def test_misa_folder_converts_to_a_cache(tmp_path):
    misa_dir = tmp_path / "misa"
    misa_dir.mkdir()
    cached = load_dataset(convert_to_cache(_write_misa(misa_dir), tmp_path / "cache"))
    assert cached["valid"].vocabulary == ["<pad>", "<unk>", "a", "b"]
    assert cached["train"].features["text"].tolist() == [[2, 3]]


@pytest.mark.parametrize("make, found", [
    (lambda d: d / "absent.pkl", "nothing at this path"),
    (lambda d: d, "a folder with []"),
    (lambda d: (d / "seq.csd").write_bytes(b"") or d / "seq.csd", "a '.csd' file"),
])
def test_unrecognised_paths(tmp_path, make, found):
    path = make(tmp_path)
    with pytest.raises(DatasetError, match="unrecognised dataset path") as info:
        load_dataset(path)
    assert found in str(info.value) and "manifest.json" in str(info.value)
