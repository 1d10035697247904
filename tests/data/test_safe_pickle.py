import collections
import os
import pickle

import numpy as np
import pytest

from dhmd_graph.data.errors import DatasetError
from dhmd_graph.data.safe_pickle import load_pickle


class _WritesMarker:
    """Loading this object's pickle would call os.system, creating a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _Execs:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_numpy_and_plain_data_round_trip(write_pickle, protocol):
    data = {
        "features": np.arange(24, dtype=np.float32).reshape(2, 3, 4),
        "ids": np.array(["a$_$0", "b$_$1"], dtype=object),
        "words": np.array(["hi", "there"]),
        "scalars": [np.float32(1.5), np.int64(3), 2.0, "x", b"raw", None, True],
        "containers": (set([1]), frozenset([2]), collections.OrderedDict(a=1), complex(1, 2)),
    }
    path = write_pickle(None)
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    loaded = load_pickle(path)
    np.testing.assert_array_equal(loaded["features"], data["features"])
    assert loaded["features"].dtype == np.float32
    assert list(loaded["ids"]) == ["a$_$0", "b$_$1"]
    assert list(loaded["words"]) == ["hi", "there"]
    assert loaded["scalars"] == data["scalars"]
    assert loaded["containers"] == data["containers"]


@pytest.mark.parametrize("payload, name", [(_WritesMarker, f"{os.system.__module__}.system"),
                                           (_Execs, "builtins.exec")])
def test_forbidden_global_is_refused_before_it_runs(tmp_path, write_pickle, payload, name):
    marker = tmp_path / "marker"
    path = write_pickle({"train": [payload(marker)]})
    with pytest.raises(DatasetError) as info:
        load_pickle(path)
    assert not marker.exists()
    message = str(info.value)
    assert f"'{name}'" in message
    assert str(path) in message


def test_numpy_global_outside_the_allowlist_is_refused(write_pickle):
    path = write_pickle(np.load)  # a real numpy function, pickled by reference
    with pytest.raises(DatasetError, match=r"'numpy\.load'"):
        load_pickle(path)


def test_truncated_pickle(write_pickle):
    path = write_pickle({"x": np.zeros((10, 10))})
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(DatasetError, match="cannot read the file as a pickle") as info:
        load_pickle(path)
    assert str(path) in str(info.value)


def test_not_a_pickle(tmp_path):
    path = tmp_path / "notes.pkl"
    path.write_text("just some text\n")
    with pytest.raises(DatasetError, match="truncated, corrupt or not a pickle"):
        load_pickle(path)


def test_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="no such file"):
        load_pickle(tmp_path / "absent.pkl")


class _Calls:
    """Unpickles to ``function(*args)``."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


def _reconstruct():
    from numpy._core.multiarray import _reconstruct as reconstruct

    return reconstruct


@pytest.mark.parametrize("bomb, what", [
    (lambda: _Calls(_reconstruct(), np.ndarray, (10**12,), b"b"), "_reconstruct()"),
    (lambda: _Calls(np.ndarray, (10**6, 10**6)), "an array"),
    (lambda: _Calls(bytearray, 10**12), "bytearray()"),
])
def test_declared_allocations_beyond_the_files_size_are_refused(write_pickle, bomb, what):
    path = write_pickle({"train": bomb()})
    with pytest.raises(DatasetError, match="declares more data than it holds") as info:
        load_pickle(path)
    assert info.value.field == what and str(path) in str(info.value)


class _SharedState:
    """An array whose pickled state (and bytes) is one object shared by every copy."""

    def __init__(self, state):
        self.state = state

    def __reduce__(self):
        return _reconstruct(), (np.ndarray, (0,), b"b"), self.state


def test_arrays_rebuilt_from_shared_bytes_are_charged_every_time(write_pickle, monkeypatch):
    from dhmd_graph.data import checks

    monkeypatch.setattr(checks, "MIN_BUDGET", 1 << 20)
    row = np.zeros(10_000, np.float64)  # 80 kB
    honest = write_pickle([row + i for i in range(100)], "honest.pkl")  # 8 MB in the file
    assert len(load_pickle(honest)) == 100
    state = row.__reduce__()[2]  # (version, shape, dtype, fortran, bytes)
    shared = write_pickle([_SharedState(state) for _ in range(100)], "shared.pkl")
    assert shared.stat().st_size < 100_000  # 8 MB of arrays from 80 kB of bytes
    with pytest.raises(DatasetError, match="declares more data than it holds"):
        load_pickle(shared)


def test_the_limit_can_be_raised(write_pickle, monkeypatch):
    from dhmd_graph.data import checks

    monkeypatch.setattr(checks, "MIN_BUDGET", 0)
    path = write_pickle(np.zeros(1 << 16, np.float64))
    monkeypatch.setenv("DHMD_EXPANSION_LIMIT", "0.5")
    with pytest.raises(DatasetError, match="DHMD_EXPANSION_LIMIT"):
        load_pickle(path)
    monkeypatch.setenv("DHMD_EXPANSION_LIMIT", "4")
    assert load_pickle(path).shape == (1 << 16,)
    monkeypatch.setenv("DHMD_EXPANSION_LIMIT", "lots")
    with pytest.raises(ValueError, match="DHMD_EXPANSION_LIMIT: expected a positive number"):
        load_pickle(path)


def test_loaded_arrays_are_plain_ndarrays(write_pickle):
    data = {"a": np.arange(6).reshape(2, 3), "b": [np.array(["x", "y"], dtype=object)]}
    loaded = load_pickle(write_pickle(data))
    assert type(loaded["a"]) is np.ndarray and type(loaded["b"][0]) is np.ndarray
    assert loaded["b"][0].tolist() == ["x", "y"]
