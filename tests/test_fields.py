"""Strict field types of the typed configs, and where two configs differ."""

from dataclasses import dataclass, field

import pytest

from dhmd_graph.fields import check_field_types, first_difference, matches


@pytest.mark.parametrize("hint, good, bad", [
    (bool, [True, False], [1, 0, "true", None]),
    (int, [0, -3, 10**20], [True, 1.0, "1", None]),
    (float, [0.5, 2, -1e300], [True, "0.1", None]),
    (str, ["", "x"], [1, None, b"x"]),
    (list[int], [[], [1, 2]], ["1111", [1, "2"], [True], (1, 2)]),
    (dict[str, float], [{}, {"a": 1, "b": 0.5}], [[("a", 1)], {"a": "1"}, {1: 1.0}]),
    (int | None, [None, 3], [2.5, False]),
])
def test_matches(hint, good, bad):
    assert all(matches(hint, value) for value in good)
    assert not any(matches(hint, value) for value in bad)


@dataclass
class _Example:
    epochs: int = 3
    seeds: list[int] = field(default_factory=lambda: [1])

    def __post_init__(self):
        check_field_types(self)


def test_check_field_types_names_class_field_and_value():
    _Example()
    with pytest.raises(ValueError, match=r"_Example.epochs: expected an integer, found True "
                                         r"\(bool\)"):
        _Example(epochs=True)
    with pytest.raises(ValueError, match=r"_Example.seeds: expected a list of integers, found "
                                         r"'1111' \(str\)"):
        _Example(seeds="1111")


def test_first_difference():
    saved = {"train": {"lr": 0.1, "seeds": [1]}, "note": "x"}
    assert first_difference(saved, saved) is None
    assert first_difference(saved, {"train": {"lr": 0.2, "seeds": [1]}, "note": "x"}) == (
        "train.lr", 0.1, 0.2)
    assert first_difference(saved, {"train": {"lr": 0.1, "seeds": [1]}}) == ("note", "x", None)
    assert first_difference(saved, {"train": {"lr": 0.1}}, shared_only=True) is None
