import ctypes
import ctypes.util

import pytest

from dhmd_graph import allocator
from dhmd_graph.cli import main


def _has_mallopt() -> bool:
    try:
        return hasattr(ctypes.CDLL(ctypes.util.find_library("c")), "mallopt")
    except OSError:
        return False


@pytest.mark.skipif(not _has_mallopt(), reason="needs glibc's mallopt")
def test_keep_freed_memory_sets_the_thresholds_with_glibc(monkeypatch):
    monkeypatch.delenv(allocator.ENVIRONMENT_VARIABLE, raising=False)
    assert allocator.keep_freed_memory() is True


def test_system_keeps_the_allocator_as_it_is(monkeypatch):
    monkeypatch.setenv(allocator.ENVIRONMENT_VARIABLE, "System")
    calls = []
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda name: calls.append(name))
    assert allocator.keep_freed_memory() is False and calls == []


def test_without_mallopt_nothing_changes(monkeypatch):
    monkeypatch.delenv(allocator.ENVIRONMENT_VARIABLE, raising=False)
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda name: object())  # no mallopt
    assert allocator.keep_freed_memory() is False


def test_the_command_line_keeps_freed_memory(monkeypatch, tmp_path, capsys):
    calls = []
    monkeypatch.setattr("dhmd_graph.cli.keep_freed_memory", lambda: calls.append(1))
    assert main(["describe", str(tmp_path / "missing")]) == 2  # a bad path: exit 2
    assert calls == [1]
