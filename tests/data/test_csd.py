import json
import sys

import numpy as np
import pytest

from dhmd_graph.data import read_csd
from dhmd_graph.data.errors import DatasetError

h5py = pytest.importorskip("h5py")


METADATA = {"root name": "COVAREP", "dimension names": ["f0", "vuv"], "alignment compatible": True}


def write_csd(path, *, with_data=True):
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as handle:
        group = handle.create_group("COVAREP")
        if with_data:
            for video, count in (("abc", 3), ("xyz", 5)):
                entry = group.create_group(f"data/{video}")
                entry["features"] = rng.normal(size=(count, 2))
                starts = np.arange(count) * 0.1
                entry["intervals"] = np.stack([starts, starts + 0.1], axis=1)
        meta = group.create_group("metadata")
        for key, value in METADATA.items():
            meta.create_dataset(key, (1,), dtype=h5py.string_dtype())[0] = json.dumps(value)
    return path


def test_reads_entries_and_metadata(tmp_path):
    sequence = read_csd(write_csd(tmp_path / "covarep.csd"))
    assert sequence.name == "COVAREP"
    assert sorted(sequence.entries) == ["abc", "xyz"]
    entry = sequence.entries["xyz"]
    assert entry.features.shape == (5, 2) and entry.intervals.shape == (5, 2)
    np.testing.assert_allclose(entry.intervals[:, 1] - entry.intervals[:, 0], 0.1)
    assert sequence.metadata == METADATA


def test_file_without_data_group(tmp_path):
    path = write_csd(tmp_path / "empty.csd", with_data=False)
    with pytest.raises(DatasetError, match="without data") as info:
        read_csd(path)
    assert info.value.field == "COVAREP/data" and str(path) in str(info.value)


def test_mismatched_intervals(tmp_path):
    path = write_csd(tmp_path / "bad.csd")
    with h5py.File(path, "a") as handle:
        del handle["COVAREP/data/abc/intervals"]
        handle["COVAREP/data/abc/intervals"] = np.zeros((2, 2))
    with pytest.raises(DatasetError, match=r"intervals \(2, 2\)"):
        read_csd(path)


def test_not_hdf5(tmp_path):
    path = tmp_path / "text.csd"
    path.write_text("not hdf5")
    with pytest.raises(DatasetError, match="cannot open the computational sequence"):
        read_csd(path)


def test_missing_h5py_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)  # makes `import h5py` raise ImportError
    with pytest.raises(ImportError, match=r"pip install 'dhmd_graph\[csd\]'"):
        read_csd(tmp_path / "any.csd")
