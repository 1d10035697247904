"""Labels in a plain-arrays folder: classes, multi-hot, scores, none; dataset.json."""

import csv
import json

import numpy as np
import pytest
import torch

from dhmd_graph.cli import main
from dhmd_graph.data import (
    DatasetError,
    collate,
    load_arrays,
    load_dataset,
    write_arrays,
)
from dhmd_graph.data.arrays import dataset_from_arrays
from dhmd_graph.data.loading import describe

SPLITS = ["train"] * 5 + ["valid"] * 2 + ["test"] * 2
EMOTIONS = ["happy", "sad", "neutral", "angry", "excited", "frustrated"]


def folder_with(path, columns: dict[str, list[str]] | None = None, *, description=None,
                splits=None, n=9):
    """Features text (n, 3, 2) and audio (n, 2); labels.csv with ``columns`` after id, split."""
    rng = np.random.default_rng(0)
    path.mkdir()
    np.save(path / "text.npy", rng.normal(size=(n, 3, 2)).astype(np.float32))
    np.save(path / "audio.npy", rng.normal(size=(n, 2)).astype(np.float32))
    splits = splits or SPLITS[:n]
    columns = columns or {}
    with (path / "labels.csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["id", "split", *columns])
        for i in range(n):
            writer.writerow([f"clip{i}", splits[i], *(values[i] for values in columns.values())])
    if description is not None:
        (path / "dataset.json").write_text(description if isinstance(description, str)
                                           else json.dumps(description))
    return path


INDICES = ["0", "5", "2", "3", "1", "4", "0", "2", "5"]


def test_integer_classes_declared_in_dataset_json(tmp_path, capsys):
    folder = folder_with(tmp_path / "f", {"label": INDICES}, description={"label_kind": "class"})
    datasets = load_dataset(folder)
    train = datasets["train"]
    assert train.label_kind == "class" and train.num_classes == 6 and train.labelled
    assert train.labels.dtype == np.int64 and train.labels.tolist() == [0, 5, 2, 3, 1]
    assert train.label_names is None
    # A declared num_classes holds when the data lacks the last classes.
    other = folder_with(tmp_path / "g", {"label": ["0", "1", "2"] * 3},
                        description={"label_kind": "class", "num_classes": 6})
    assert load_arrays(other)["test"].num_classes == 6
    assert main(["describe", str(folder)]) == 0
    assert "label kind: class (6 classes)" in capsys.readouterr().out


def test_class_names_with_the_classes_listed(tmp_path):
    names = [EMOTIONS[int(i)] for i in INDICES]
    folder = folder_with(tmp_path / "f", {"label": names}, description={"classes": EMOTIONS})
    datasets = load_arrays(folder)
    assert datasets["train"].label_kind == "class"
    assert datasets["train"].labels.tolist() == [0, 5, 2, 3, 1]
    assert datasets["test"].label_names == tuple(EMOTIONS) and datasets["test"].num_classes == 6
    text = describe(datasets)
    assert "label kind: class (6 classes: happy, sad, neutral" in text
    assert "frustrated | " in text


def test_class_names_without_a_list_say_what_to_write(tmp_path):
    names = [EMOTIONS[int(i)] for i in INDICES]
    folder = folder_with(tmp_path / "f", {"label": names})
    with pytest.raises(DatasetError, match="class names without a list of classes") as info:
        load_arrays(folder)
    message = str(info.value)
    assert "not a number" not in message and "Write one number" not in message
    assert '"classes": ["angry", "excited", "frustrated", "happy", "neutral", "sad"]' in message
    assert info.value.field == "label, line 2" and "labels.csv" in message
    unknown = folder_with(tmp_path / "g", {"label": names[:-1] + ["bored"]},
                          description={"classes": EMOTIONS})
    with pytest.raises(DatasetError, match="unknown class") as info:
        load_arrays(unknown)
    assert info.value.field == "label, line 10" and "'bored'" in str(info.value)


def test_whole_numbers_alone_are_not_guessed(tmp_path):
    folder = folder_with(tmp_path / "f", {"label": INDICES})
    with pytest.raises(DatasetError, match="labels could be classes or scores") as info:
        load_arrays(folder)
    assert '{"label_kind": "class"}' in str(info.value) and "dataset.json" in str(info.value)
    (folder / "dataset.json").write_text('{"label_kind": "score"}')
    train = load_arrays(folder)["train"]
    assert train.label_kind == "score" and train.labels.dtype == np.float32
    np.testing.assert_array_equal(train.labels, [0, 5, 2, 3, 1])
    # A number written with a point or an exponent is a score: no declaration needed.
    scores = folder_with(tmp_path / "g", {"label": ["0", "1.0", "2", "-3", "1e-1"] + ["1"] * 4})
    assert load_arrays(scores)["train"].label_kind == "score"
    index = folder_with(tmp_path / "h", {"label": INDICES[:-1] + ["6"]},
                        description={"label_kind": "class", "num_classes": 6})
    with pytest.raises(DatasetError, match="class index out of range") as info:
        load_arrays(index)
    assert info.value.field == "label, line 10" and "[0, 5]" in str(info.value)


def test_multi_hot_columns_and_labels_npy(tmp_path, capsys):
    rng = np.random.default_rng(1)
    hot = (rng.uniform(size=(9, 3)) > 0.5).astype(int)
    columns = {f"label_{name}": [str(v) for v in hot[:, c]]
               for c, name in enumerate(["joy", "anger", "fear"])}
    folder = folder_with(tmp_path / "f", columns)
    train = load_arrays(folder)["train"]
    assert train.label_kind == "multi_hot" and train.label_names == ("joy", "anger", "fear")
    np.testing.assert_array_equal(train.labels, hot[:5])
    array = folder_with(tmp_path / "g", description={"classes": ["joy", "anger", "fear"]})
    np.save(array / "labels.npy", hot.astype(bool))
    datasets = load_arrays(array)
    assert datasets["test"].label_kind == "multi_hot" and datasets["test"].num_classes == 3
    assert "labels" not in datasets["test"].modalities  # labels.npy is not a modality
    np.testing.assert_array_equal(datasets["test"].labels, hot[7:])
    assert main(["describe", str(array)]) == 0
    assert "label kind: multi_hot (3 labels: joy, anger, fear)" in capsys.readouterr().out
    np.save(array / "labels.npy", hot * 2)
    with pytest.raises(DatasetError, match="other than 0/1") as info:
        load_arrays(array)
    assert "labels.npy" in str(info.value)
    both = folder_with(tmp_path / "h", {"label": ["0.5"] * 9}, description={})
    np.save(both / "labels.npy", hot)
    with pytest.raises(DatasetError, match="two kinds of label"):
        load_arrays(both)


@pytest.mark.parametrize("description, field, problem", [
    ({"label_kind": "classes"}, "label_kind", "malformed dataset description"),
    ({"label_kind": "class", "labels": 3}, "labels", "unknown key 'labels'"),
    ({"classes": "happy,sad"}, "classes", "wrong type for 'classes'"),
    ({"classes": ["happy", "happy"]}, "classes", "malformed dataset description"),
    ({"num_classes": True}, "num_classes", "wrong type for 'num_classes'"),
    ({"num_classes": 1}, "num_classes", "malformed dataset description"),
    ({"num_classes": 3, "classes": ["a", "b"]}, "num_classes", "malformed dataset description"),
    ({"label_kind": "score", "num_classes": 3}, "num_classes", "malformed dataset description"),
    ("[" * 100 + "]" * 100, None, "nested too deeply"),
    ('{"label_kind": "class", "label_kind": "score"}', "label_kind", "repeated"),
    ("[]", None, "not a JSON object"),
])
def test_a_malformed_dataset_json(tmp_path, capsys, description, field, problem):
    folder = folder_with(tmp_path / "f", {"label": INDICES}, description=description)
    with pytest.raises(DatasetError, match=problem) as info:
        load_arrays(folder)
    assert info.value.field == field and "dataset.json" in str(info.value)
    assert main(["describe", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "dataset.json" in err and "Traceback" not in err


def test_a_declared_kind_the_files_do_not_hold(tmp_path):
    folder = folder_with(tmp_path / "f", {"label": ["0.5"] * 9},
                         description={"label_kind": "multi_hot"})
    with pytest.raises(DatasetError, match="another kind than declared"):
        load_arrays(folder)
    empty = folder_with(tmp_path / "g", description={"label_kind": "class"})
    with pytest.raises(DatasetError, match="labels declared but absent"):
        load_arrays(empty, partial=True)


def _round_trip(datasets, folder, **options):
    back = load_arrays(write_arrays(datasets, folder), **options)
    assert list(back) == list(datasets)
    for split, dataset in datasets.items():
        copy = back[split]
        assert (copy.label_kind, copy.num_classes, copy.label_names, copy.labelled) == (
            dataset.label_kind, dataset.num_classes, dataset.label_names, dataset.labelled)
        if dataset.labelled:
            np.testing.assert_array_equal(copy.labels, dataset.labels)
            assert copy.labels.dtype == dataset.labels.dtype
        for name, values in dataset.extras.items():
            np.testing.assert_array_equal(copy.extras[name], values)
            assert copy.extras[name].dtype == values.dtype
    return back


def _splits(labels_of, **options):
    rng = np.random.default_rng(0)
    splits = {}
    for split, n in (("train", 4), ("valid", 2), ("test", 3)):
        splits[split] = dataset_from_arrays(
            {"text": rng.normal(size=(n, 3, 2)).astype(np.float32)}, labels_of(n),
            extras={"flags": rng.uniform(size=(n, 2)) > 0.5}, split=split, **options)
    return splits


@pytest.mark.parametrize("labels_of, options", [
    (lambda n: np.linspace(-2.5, 2.5, n), {}),
    (lambda n: np.arange(n) % 3, {"label_kind": "class", "num_classes": 4}),
    (lambda n: np.arange(n) % 3, {"label_kind": "class", "num_classes": 3,
                                  "label_names": ["neg", "neu", "pos"]}),
    (lambda n: np.eye(3)[np.arange(n) % 3], {"label_kind": "multi_hot"}),
    (lambda n: np.eye(3)[np.arange(n) % 3], {"label_kind": "multi_hot",
                                             "label_names": ["a", "b", "c"]}),
    (lambda n: None, {}),
])
def test_write_arrays_writes_every_kind_it_reads(tmp_path, labels_of, options):
    partial = labels_of(1) is None
    _round_trip(_splits(labels_of, **options), tmp_path / "f", partial=partial)


def test_a_folder_without_labels_is_for_prediction(tmp_path, capsys):
    folder = folder_with(tmp_path / "f")
    with pytest.raises(DatasetError, match="no labels") as info:
        load_dataset(folder)
    message = str(info.value)
    assert "Add the header row" not in message and "['id', 'split']" in message
    assert "'label' column" in message
    datasets = load_dataset(folder, partial=True)
    test = datasets["test"]
    assert not test.labelled and test.labels is None and test.label_kind is None
    assert len(test) == 2 and test[0]["label"] is None
    batch = collate([test[0], test[1]])
    assert batch.labels is None and not batch.labelled and len(batch) == 2
    assert batch.to("cpu").labels is None and batch.features["text"].shape == (2, 3, 2)
    loader = torch.utils.data.DataLoader(test, batch_size=2, collate_fn=collate)
    assert [b.ids for b in loader] == [["clip7", "clip8"]]
    assert "label kind: none" in describe(datasets)
    with pytest.raises(DatasetError, match="unlabelled data cannot be cached"):
        from dhmd_graph.data import write_cache
        write_cache(datasets, tmp_path / "cache")
    with pytest.raises(ValueError, match="mixes labelled and unlabelled"):
        labelled = load_arrays(folder_with(tmp_path / "g", {"label": ["0.5"] * 9}))["test"]
        collate([labelled[0], test[0]])


def test_a_folder_of_one_split(tmp_path):
    folder = folder_with(tmp_path / "f", {"label": ["0.5", "1.5", "2.5"]}, n=3,
                         splits=["test"] * 3)
    with pytest.raises(DatasetError, match="none of 'train'") as info:
        load_dataset(folder)
    assert "predicted on" in str(info.value)
    datasets = load_dataset(folder, partial=True)
    assert list(datasets) == ["test"] and datasets["test"].labels.tolist() == [0.5, 1.5, 2.5]
    unlabelled = folder_with(tmp_path / "g", n=2, splits=["test"] * 2)
    assert not load_dataset(unlabelled, partial=True)["test"].labelled


def test_the_header_message_names_what_is_missing(tmp_path):
    folder = folder_with(tmp_path / "f", {"label": ["0.5"] * 9})
    (folder / "labels.csv").write_text("clip0,train,0.5\nclip1,train,1.5\n")
    with pytest.raises(DatasetError, match="missing columns 'id', 'split'") as info:
        load_arrays(folder)
    assert "clip0" in str(info.value) and "the first row is the header" in str(info.value)
