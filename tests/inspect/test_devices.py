"""The --device option of `dhmd eval` and `dhmd inspect`, and device names checked
against the machine (`resolve_device`)."""

import pytest
import torch

from dhmd_graph.cli import EXIT_BAD_INPUT, main
from dhmd_graph.train.distributed import resolve_device

MISSING_GPU = f"cuda:{torch.cuda.device_count() + 1}"  # on every machine, one GPU too many


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match=r"device: expected 'auto', 'cpu', 'cuda' or "
                                         r"'cuda:N', found 'gpu'"):
        resolve_device("gpu")
    with pytest.raises(ValueError, match=rf"a GPU of this machine .*found '{MISSING_GPU}'"):
        resolve_device(MISSING_GPU)


@pytest.mark.parametrize("command", ["eval", "inspect"])
def test_a_device_the_machine_lacks_exits_2(tiny_run, tmp_path, capsys, command):
    extra = ["--out", str(tmp_path / "out")] if command == "inspect" else []
    assert main([command, str(tiny_run["run_dir"]), "--device", MISSING_GPU, *extra]) == (
        EXIT_BAD_INPUT)
    err = capsys.readouterr().err
    assert err.startswith(f"dhmd {command}: error: device: expected 'cpu' or a GPU")
    assert "Traceback" not in err and not (tmp_path / "out").exists()


def test_eval_and_inspect_on_the_cpu(tiny_run, tmp_path, capsys):
    assert main(["eval", str(tiny_run["run_dir"]), "--split", "valid", "--device", "cpu"]) == 0
    assert "MAE" in capsys.readouterr().out
    assert main(["inspect", str(tiny_run["seed_dir"]), "--pca", "--device", "cpu",
                 "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "report.md").is_file()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_eval_on_a_gpu_matches_the_cpu(tiny_run, capsys):
    main(["eval", str(tiny_run["run_dir"]), "--split", "valid", "--device", "cpu"])
    cpu = capsys.readouterr().out
    assert main(["eval", str(tiny_run["run_dir"]), "--split", "valid", "--device", "cuda"]) == 0
    gpu = capsys.readouterr().out
    mae = [next(line for line in out.splitlines() if line.startswith("MAE")) for out in (cpu, gpu)]
    assert float(mae[0].split()[1]) == pytest.approx(float(mae[1].split()[1]), abs=1e-3)
