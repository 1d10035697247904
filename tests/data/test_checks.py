"""The checks shared by the readers: bounded materialisation and consistent splits."""

import numpy as np
import pytest

from dhmd_graph.data import MultimodalDataset
from dhmd_graph.data.checks import Budget, Location, as_array, check_splits
from dhmd_graph.data.errors import DatasetError


@pytest.fixture
def where(tmp_path):
    path = tmp_path / "data.pkl"
    path.write_bytes(b"\0" * 1000)
    return Location(path, "train", Budget(path))


def test_budget_is_the_files_size_times_the_limit(where, monkeypatch):
    from dhmd_graph.data import checks

    monkeypatch.setattr(checks, "MIN_BUDGET", 100)
    budget = Budget(where.file)
    assert budget.total == 16 * 1000 + 100
    budget.spend(16_000, "text")
    with pytest.raises(DatasetError, match=r"16,100 bytes .*found 101 more bytes declared "
                                           r"\(16,000 already read\)"):
        budget.spend(101, "audio", "valid")


def test_shared_rows_are_counted_per_reference_without_expanding(where, monkeypatch):
    from dhmd_graph.data import checks

    monkeypatch.setattr(checks, "MIN_BUDGET", 8 * 10**6)
    row = [0.0] * 1000
    assert as_array([[row] * 10] * 100, where, "text").shape == (100, 10, 1000)  # 8 MB
    with pytest.raises(DatasetError, match="declares more data") as info:
        as_array([[row] * 1000] * 1000, where, "text")  # 8 GB declared, counted in ~1 ms
    assert info.value.field == "text"


def test_arrays_pass_and_bad_nesting_is_a_data_error(where):
    array = np.zeros((2, 3))
    assert as_array(array, where, "x") is array
    loop = [1.0]
    loop.append(loop)
    with pytest.raises(DatasetError, match="contains itself"):
        as_array(loop, where, "x")
    with pytest.raises(DatasetError, match="a rectangular array"):
        as_array([[1.0], [1.0, 2.0]], where, "x")


def _split(width, n=3, name="train"):
    return MultimodalDataset({"a": np.zeros((n, 2, width), np.float32)}, {"a": [1] * n},
                             np.zeros(n), [f"{name}{i}" for i in range(n)], split=name)


def test_check_splits(tmp_path):
    check_splits({"train": _split(4), "valid": _split(4), "test": _split(4)}, tmp_path)
    with pytest.raises(DatasetError, match="missing split") as info:
        check_splits({"train": _split(4), "valid": _split(4)}, tmp_path)
    assert info.value.split == "test"
    with pytest.raises(DatasetError, match="disagree on their feature widths") as info:
        check_splits({"train": _split(4), "valid": _split(5), "test": _split(4)}, tmp_path)
    assert info.value.split == "valid" and "{'a': 4}" in str(info.value)
