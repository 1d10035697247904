"""The OpenMP defaults of the entry points (``dhmd`` and ``examples/*.py``)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dhmd_graph.openmp import USER_VARIABLES, openmp_defaults

ROOT = Path(__file__).resolve().parents[1]


def test_passive_wait_only_when_the_user_chose_nothing(monkeypatch):
    monkeypatch.delitem(sys.modules, "torch", raising=False)  # as in an entry point before torch loads
    assert openmp_defaults({}) == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert openmp_defaults({"PATH": "/bin"}) == {"OMP_WAIT_POLICY": "PASSIVE"}
    for name in USER_VARIABLES:
        assert openmp_defaults({name: "1"}) == {}, name
    assert openmp_defaults({"OMP_WAIT_POLICY": "ACTIVE"}) == {}


def test_nothing_once_torch_is_imported():
    import torch  # noqa: F401  (the runtime has read its settings: a change would be a lie)

    assert openmp_defaults({}) == {}


# Each entry point in a fresh interpreter, as a user starts it, with `import torch` made to
# fail: the entry point must have chosen the policy before it first tries to import torch.
# (`dhmd` reports the failed import as a bug and exits 1; the example lets it propagate.)
BLOCK_TORCH = """
import os, runpy, sys
class BlockTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch":
            raise ImportError("torch blocked")
sys.meta_path.insert(0, BlockTorch())
sys.argv = {argv!r}
try:
    runpy.run_{kind}({target!r}, run_name="__main__")
except (ImportError, SystemExit) as error:
    assert isinstance(error, ImportError) or error.code == 1, error
    print(os.environ.get("OMP_WAIT_POLICY"))
"""
CLI = BLOCK_TORCH.format(argv=["dhmd", "describe", "x.pkl"], kind="module",
                         target="dhmd_graph.cli")
EXAMPLE = BLOCK_TORCH.format(argv=["mosei_dhmd.py"], kind="path",
                             target=str(ROOT / "examples" / "mosei_dhmd.py"))


@pytest.mark.parametrize("code", [CLI, EXAMPLE], ids=["dhmd", "example"])
@pytest.mark.parametrize("user, expected", [({}, "PASSIVE"),
                                            ({"OMP_NUM_THREADS": "1"}, "None"),
                                            ({"OMP_WAIT_POLICY": "ACTIVE"}, "ACTIVE")])
def test_entry_points_choose_before_torch_loads(code, user, expected):
    environment = {k: v for k, v in os.environ.items() if k not in USER_VARIABLES} | user
    environment["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert done.stdout.strip().splitlines()[-1:] == [expected], done.stderr[-2000:]
