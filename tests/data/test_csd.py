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


def _entry(handle, name="COVAREP/data/abc"):
    entry = handle.create_group(name)
    entry["features"] = np.zeros((3, 2))
    entry["intervals"] = np.zeros((3, 2))
    return entry


def test_dataset_with_external_storage_is_refused(tmp_path):
    other = tmp_path / "secret.bin"
    other.write_bytes(np.arange(6, dtype=np.float64).tobytes())
    path = tmp_path / "external.csd"
    with h5py.File(path, "w") as handle:
        entry = handle.create_group("COVAREP/data/abc")
        entry.create_dataset("features", shape=(3, 2), dtype="f8",
                             external=[(str(other), 0, 48)])
        entry["intervals"] = np.zeros((3, 2))
    with pytest.raises(DatasetError, match="stored in other files") as info:
        read_csd(path)
    assert info.value.field == "COVAREP/data/abc/features" and "external storage" in str(info.value)


def test_link_to_another_file_is_refused(tmp_path):
    other = write_csd(tmp_path / "other.csd")
    path = tmp_path / "linked.csd"
    with h5py.File(path, "w") as handle:
        handle.create_group("COVAREP")["data"] = h5py.ExternalLink(str(other), "/COVAREP/data")
    with pytest.raises(DatasetError, match="a link to another file"):
        read_csd(path)


def test_declared_size_beyond_the_file_is_refused(tmp_path):
    path = tmp_path / "huge.csd"
    with h5py.File(path, "w") as handle:  # a terabyte declared, nothing written
        entry = handle.create_group("COVAREP/data/abc")
        entry.create_dataset("features", shape=(10**8, 10**4), dtype="f8", chunks=(1, 10))
        entry.create_dataset("intervals", shape=(10**8, 2), dtype="f8", chunks=(1, 2))
    assert path.stat().st_size < 100_000
    with pytest.raises(DatasetError, match="declares more data than it holds"):
        read_csd(path)


@pytest.mark.parametrize("layout, message", [
    ("data_is_a_dataset", "a group expected"),
    ("entry_is_a_dataset", "a group expected"),
    ("features_is_a_group", "a dataset expected"),
    ("metadata_is_a_dataset", "a group expected"),
    ("string_features", "features are not numeric"),
    ("non_utf8_metadata", "metadata is not UTF-8"),
])
def test_malformed_layouts(tmp_path, layout, message):
    path = tmp_path / "bad.csd"
    with h5py.File(path, "w") as handle:
        group = handle.create_group("COVAREP")
        if layout == "data_is_a_dataset":
            group["data"] = np.zeros(3)
        elif layout == "entry_is_a_dataset":
            group.create_group("data")["abc"] = np.zeros(3)
        elif layout == "features_is_a_group":
            entry = group.create_group("data/abc")
            entry.create_group("features")
            entry["intervals"] = np.zeros((3, 2))
        elif layout == "string_features":
            entry = group.create_group("data/abc")
            entry["features"] = np.array([[b"a", b"b"]] * 3)
            entry["intervals"] = np.zeros((3, 2))
        else:
            _entry(handle)
            if layout == "metadata_is_a_dataset":
                group["metadata"] = np.zeros(2)
            else:
                group.create_group("metadata")["root name"] = np.array([b"\xff\xfe bad"])
    with pytest.raises(DatasetError, match=message) as info:
        read_csd(path)
    assert str(path) in str(info.value)
