"""Bad files in a plain-arrays folder, through `dhmd describe`: exit 2, one message naming
the file and field, no traceback, no hang (the table of issue 26's first row)."""

import json
import os
import signal
import warnings
import zipfile

import numpy as np
import pytest

from dhmd_graph.cli import main
from dhmd_graph.data import DatasetError, load_arrays
from dhmd_graph.files import OutsideFolderWarning


@pytest.fixture
def folder(tmp_path):
    """text (4, 3) token ids over a 6-word vocabulary, audio (4, 2, 3), labels of 3 splits."""
    path = tmp_path / "mine"
    path.mkdir()
    np.save(path / "text.npy", np.array([[2, 3, 0], [4, 5, 1], [1, 0, 0], [5, 2, 3]]))
    np.save(path / "audio.npy", np.ones((4, 2, 3), np.float32))
    (path / "vocabulary.json").write_text(json.dumps(["<pad>", "<unk>", "a", "b", "c", "d"]))
    (path / "labels.csv").write_text("id,split,label\nc0,train,0.5\nc1,train,-1.5\n"
                                     "c2,valid,1.0\nc3,test,2.25\n")
    return path


@pytest.fixture(autouse=True)
def no_hang():
    """Fail instead of hanging, should a read block (e.g. on a named pipe)."""
    def timeout(*_):
        raise TimeoutError("the read blocked")
    previous = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def refused(folder, capsys, *pieces):
    """`dhmd describe folder` exits 2 with one message holding ``pieces``, no traceback."""
    assert main(["describe", str(folder)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    assert len(captured.err.strip().splitlines()) == 1, captured.err
    for piece in pieces:
        assert piece in captured.err, (piece, captured.err)
    return captured.err


def test_the_folder_itself_is_fine(folder, capsys):
    assert main(["describe", str(folder)]) == 0
    assert "token ids over 6 words" in capsys.readouterr().out


def _npz(path):
    np.savez(path.with_suffix(".tmp.npz"), a=np.ones(3))
    os.replace(path.with_suffix(".tmp.npz"), path)


@pytest.mark.parametrize("change, pieces", [
    (_npz, ["not a .npy file", "audio.npy", "a zip archive"]),
    (lambda p: p.write_bytes(b""), ["not a .npy file", "audio.npy", "an empty file"]),
    (lambda p: p.write_text("1,2,3\n"), ["not a .npy file", "audio.npy", "starting b'1,2,3"]),
    (lambda p: p.write_bytes(p.read_bytes()[:-8]), ["truncated .npy file", "audio.npy",
                                                    "field 'shape'"]),
    (lambda p: np.save(p, np.ones((4, 2), complex)), ["wrong dtype", "field 'dtype'"]),
    (lambda p: np.save(p, np.array(["a"] * 4)), ["wrong dtype", "field 'dtype'"]),
    (lambda p: np.save(p, np.ones((4, 2, 3, 1))), ["wrong shape", "field 'shape'"]),
    (lambda p: np.save(p, np.ones((5, 2, 3))), ["wrong shape", "4 rows", "(5, 2, 3)"]),
    (lambda p: (p.unlink(), p.mkdir()), ["not a regular file", "audio.npy", "a folder"]),
    (lambda p: (p.unlink(), os.mkfifo(p)), ["not a regular file", "audio.npy", "FIFO"]),
    (lambda p: (p.unlink(), p.symlink_to(p.parent / "gone.npy")),
     ["cannot read an array", "audio.npy"]),
])
def test_a_bad_npy_file(folder, capsys, change, pieces):
    change(folder / "audio.npy")
    refused(folder, capsys, *pieces)


def test_a_header_that_declares_more_than_the_file_holds(folder, capsys):
    path = folder / "audio.npy"
    data = path.read_bytes()
    size = int.from_bytes(data[8:10], "little")  # version 1.0: the header's length
    header = data[10:10 + size].decode("latin1")
    bigger = header.replace("(4, 2, 3)", "(4, 2, 300000000)").rstrip().ljust(size - 1) + "\n"
    path.write_bytes(data[:10] + bigger.encode("latin1") + data[10 + size:])
    refused(folder, capsys, "truncated .npy file", "audio.npy", "9,600,000,000 bytes")


@pytest.mark.parametrize("text, pieces", [
    (b"id,split,label\nc0,train,0.5\nc1,train,-1\x005\nc2,valid,1\nc3,test,2\n",
     ["NUL byte", "labels.csv", "line 3"]),
    (b"\xff\xfei\x00d\x00", ["not UTF-8", "UTF-16"]),
    (b"id,split,label\nc0,train,0.5\nc1,train,nan\nc2,valid,1\nc3,test,2\n",
     ["NaN or infinite label", "labels.csv", "label, line 3"]),
    (b"id,split,label\nc0,train,0.5\nc1,train,inf\nc2,valid,1\nc3,test,2\n",
     ["NaN or infinite label", "labels.csv", "label, line 3"]),
    (b"id,split,label\nc0,train,0.5\nc1,train,1e39\nc2,valid,1\nc3,test,2\n",
     ["NaN or infinite label", "labels.csv"]),
])
def test_a_bad_labels_csv(folder, capsys, text, pieces):
    (folder / "labels.csv").write_bytes(text)
    err = refused(folder, capsys, *pieces)
    assert "Add the header row" not in err


def test_a_labels_csv_without_labels_is_described_for_prediction_and_not_trained(
        folder, capsys):
    (folder / "labels.csv").write_bytes(b"id,split\nc0,train\nc1,train\nc2,valid\nc3,test\n")
    assert main(["describe", str(folder)]) == 0
    assert "for prediction only" in capsys.readouterr().out
    with pytest.raises(DatasetError, match="no labels") as info:
        load_arrays(folder)
    assert "['id', 'split']" in str(info.value) and "Add the header row" not in str(info.value)


def test_a_byte_order_mark_is_accepted(folder, capsys):
    path = folder / "labels.csv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert main(["describe", str(folder)]) == 0
    assert load_arrays(folder)["train"].ids == ["c0", "c1"]


def test_labels_csv_as_a_pipe(folder, capsys):
    (folder / "labels.csv").unlink()
    os.mkfifo(folder / "labels.csv")
    refused(folder, capsys, "not a regular file", "labels.csv", "FIFO")


@pytest.mark.parametrize("ids, vocabulary, pieces", [
    (np.array([[2, -3, 0], [4, 5, 1], [1, 0, 0], [5, 2, 3]]), None,
     ["negative token id", "-3", "field 'text'"]),
    (np.array([[2, 2**64 - 1, 0], [4, 5, 1], [1, 0, 0], [5, 2, 3]], dtype=np.uint64), None,
     ["token id too large", "18446744073709551615", "wrap"]),
    (np.array([[2, 9, 0], [4, 5, 1], [1, 0, 0], [5, 2, 3]]), None,
     ["token id outside the vocabulary", "id 9", "size, 6", "'c0'"]),
    (None, "[" * 5000 + "]" * 5000, ["nested too deeply", "vocabulary.json"]),
    (None, '["<pad>", 3]', ["malformed vocabulary", "vocabulary.json"]),
])
def test_bad_token_ids_or_vocabulary(folder, capsys, ids, vocabulary, pieces):
    if ids is not None:
        np.save(folder / "text.npy", ids)
    if vocabulary is not None:
        (folder / "vocabulary.json").write_text(vocabulary)
    refused(folder, capsys, *pieces)
    with pytest.raises(DatasetError):
        load_arrays(folder)


def test_ids_beyond_a_missing_vocabulary_only_size_the_embedding(folder):
    (folder / "vocabulary.json").unlink()
    np.save(folder / "text.npy", np.array([[2, 90, 0], [4, 5, 1], [1, 0, 0], [5, 2, 3]]))
    assert load_arrays(folder)["train"].features["text"].max() == 90


def test_links_that_leave_the_folder_are_reported_and_read(folder, tmp_path, capsys):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    for name in ("audio.npy", "vocabulary.json"):
        (folder / name).rename(outside / name)
        (folder / name).symlink_to(outside / name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["describe", str(folder)]) == 0
    reported = [str(w.message) for w in caught if issubclass(w.category, OutsideFolderWarning)]
    assert any("audio.npy" in m and str(outside) in m for m in reported)
    assert any("vocabulary.json" in m for m in reported)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OutsideFolderWarning)  # reported above
        train = load_arrays(folder)["train"]
    np.testing.assert_array_equal(train.features["audio"], np.ones((2, 2, 3), np.float32))


def test_boolean_and_zip_extras(folder, capsys):
    np.save(folder / "extra.flags.npy", np.array([True, False, True, True]))
    assert load_arrays(folder)["test"].extras["flags"].tolist() == [True]
    with zipfile.ZipFile(folder / "extra.flags.npy", "w") as archive:
        archive.writestr("a.npy", b"")
    refused(folder, capsys, "not a .npy file", "extra.flags.npy")
