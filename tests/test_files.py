"""Atomic writes (unique temporary names, nothing left behind, errors that name the file)
and guarded reads (regular files only, a budget, links reported, strict text and JSON)."""

import errno
import os
import warnings

import pytest

from dhmd_graph.errors import DatasetError
from dhmd_graph.files import (
    Key,
    OutsideFolderWarning,
    atomic_write,
    check_object,
    naming_file,
    parse_json,
    read_user_bytes,
    read_user_csv,
    read_user_json,
    remove_leftovers,
)


def test_writes_bytes_text_and_through_a_function(tmp_path):
    assert atomic_write(tmp_path / "a.bin", b"\x00\x01").read_bytes() == b"\x00\x01"
    assert atomic_write(tmp_path / "a.txt", "héllo").read_text(encoding="utf-8") == "héllo"
    atomic_write(tmp_path / "c.bin", lambda file: file.write(b"abc"))
    assert (tmp_path / "c.bin").read_bytes() == b"abc"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "a.txt", "c.bin"]


def test_a_failed_write_keeps_the_old_file_and_removes_its_temporary(tmp_path):
    path = atomic_write(tmp_path / "config.json", "old")

    def half(file):
        file.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, half)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


def test_a_link_planted_at_a_temporary_name_is_not_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / ".config.json.tmp").symlink_to(victim)  # the name the old code used
    (folder / "config.json").symlink_to(victim)  # the target itself: replaced, not followed
    atomic_write(folder / "config.json", "new")
    assert victim.read_text() == "precious"
    assert not (folder / "config.json").is_symlink()
    assert (folder / "config.json").read_text() == "new"


def test_an_os_error_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        atomic_write(tmp_path / "missing" / "x.json", "data")
    assert info.value.filename == str(tmp_path / "missing" / "x.json")
    with pytest.raises(OSError) as info, naming_file("/data/x.npy"):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert info.value.errno == errno.ENOSPC and info.value.filename == "/data/x.npy"


def test_remove_leftovers_removes_only_temporary_files(tmp_path):
    (tmp_path / ".last.pt.a1b2c3.tmp").write_bytes(b"half")
    (tmp_path / ".dangling.tmp").symlink_to(tmp_path / "nowhere")
    for name in ("last.pt", "notes.tmp", ".dhmd.lock"):
        (tmp_path / name).write_text("keep")
    (tmp_path / ".folder.tmp").mkdir()
    removed = remove_leftovers(tmp_path)
    assert sorted(p.name for p in removed) == [".dangling.tmp", ".last.pt.a1b2c3.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".dhmd.lock", ".folder.tmp", "last.pt", "notes.tmp"]


# -- guarded reads ---------------------------------------------------------------------

def test_a_fifo_is_refused_before_any_read(tmp_path):
    fifo = tmp_path / "labels.csv"
    os.mkfifo(fifo)  # no writer: a plain open() would block forever
    for read in (read_user_bytes, read_user_csv, read_user_json):
        with pytest.raises(DatasetError, match="named pipe") as caught:
            read(fifo, max_bytes=100) if read is read_user_bytes else read(fifo)
        assert caught.value.file == str(fifo)


def test_a_folder_and_a_device_are_refused(tmp_path):
    with pytest.raises(DatasetError, match="a folder"):
        read_user_json(tmp_path)
    with pytest.raises(DatasetError, match="character device"):
        read_user_bytes("/dev/zero", max_bytes=10)


def test_a_missing_file_is_an_os_error_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError) as caught:
        read_user_json(tmp_path / "nothing.json")
    assert caught.value.filename == str(tmp_path / "nothing.json")


def test_the_size_budget_is_checked_before_reading(tmp_path):
    path = tmp_path / "big.json"
    path.write_text("[" + "1," * 100 + "1]")
    with pytest.raises(DatasetError, match="file too large") as caught:
        read_user_json(path, max_bytes=50)
    assert "at most 50 bytes" in str(caught.value)
    assert len(read_user_json(path, max_bytes=1000)) == 101


def test_a_link_out_of_the_folder_is_read_with_a_warning(tmp_path):
    outside, folder = tmp_path / "elsewhere.json", tmp_path / "dataset"
    folder.mkdir()
    outside.write_text("[1]")
    (folder / "inside.json").write_text("[2]")
    (folder / "link.json").symlink_to(outside)
    (folder / "local.json").symlink_to(folder / "inside.json")
    with pytest.warns(OutsideFolderWarning, match="elsewhere.json"):
        assert read_user_json(folder / "link.json", root=folder) == [1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_user_json(folder / "local.json", root=folder) == [2]


def test_text_drops_a_utf8_bom_and_refuses_nul_wide_boms_and_bad_bytes(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_bytes(b"\xef\xbb\xbfid,label\na,1\n")
    assert read_user_csv(path) == [["id", "label"], ["a", "1"]]
    for content, problem in ((b"id,label\na,1\x00\n", "NUL byte.*line 2"),
                             ("id,label\n".encode("utf-16"), "UTF-16"),
                             (b"id,label\n\xff\xfe,1\n", "not UTF-8.*line 2")):
        path.write_bytes(content)
        with pytest.raises(DatasetError, match=problem):
            read_user_csv(path)


def test_malformed_csv_names_the_line(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text('id,label\n"a"x,1\n')
    with pytest.raises(DatasetError, match="malformed CSV.*line 2"):
        read_user_csv(path)


@pytest.mark.parametrize("depth", [40, 100_000])
def test_deep_json_is_an_error_not_a_recursion_error(tmp_path, depth):
    path = tmp_path / "deep.json"
    path.write_text("[" * depth + "]" * depth)
    with pytest.raises(DatasetError, match="nested too deeply"):
        read_user_json(path)
    assert parse_json("[" * 5 + "]" * 5, path, max_depth=5) == [[[[[]]]]]


@pytest.mark.parametrize("text, problem", [('{"a": NaN}', "not standard JSON"),
                                           ('{"a": 1, "a": 2}', "repeated"),
                                           ('{"a": 1,}', "malformed JSON.*line 1"),
                                           ("  \n", "empty file")])
def test_refused_json(tmp_path, text, problem):
    path = tmp_path / "x.json"
    path.write_text(text)
    with pytest.raises(DatasetError, match=problem):
        read_user_json(path)


def test_check_object_checks_types_unknown_and_missing_keys(tmp_path):
    keys = {"name": Key(str, "a name", required=True), "size": Key(int, "a positive integer"),
            "rate": Key((float, type(None)), "a number or null")}
    assert check_object({"name": "x", "size": 3, "rate": 1}, keys, "f.json")
    cases = [([], "not a JSON object"), ({"size": 3}, "missing key 'name'"),
             ({"name": "x", "colour": 1}, "unknown key 'colour'"),
             ({"name": "x", "size": True}, "wrong type for 'size'.*a boolean"),
             ({"name": "x", "size": 2.5}, "wrong type for 'size'"),
             ({"name": 1}, "wrong type for 'name'")]
    for data, problem in cases:
        with pytest.raises(DatasetError, match=problem) as caught:
            check_object(data, keys, "f.json", field="model")
        assert caught.value.file == "f.json"
    with pytest.raises(DatasetError) as caught:
        check_object({"size": 3}, keys, "f.json", field="model")
    assert caught.value.field == "model.name"
