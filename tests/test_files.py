"""Atomic writes: unique temporary names, nothing left behind, errors that name the file."""

import errno

import pytest

from dhmd_graph.files import atomic_write, naming_file, remove_leftovers


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
