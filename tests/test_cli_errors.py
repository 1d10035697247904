"""The CLI's promises for bad input, kills, concurrent use and untrusted files (issue 12).

Every case builds its own bad input and runs ``dhmd`` end to end: the answer is a
one-line message on stderr naming the file or field and an exit status (2 for bad
input, 1 for an interruption, a full disk or a non-finite loss), never a traceback,
never a silently accepted input, and no temporary file left behind. The numbers in
the section titles are those of the issue's list.
"""

import errno
import io
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from dhmd_graph.cli import main

TINY = ["model.width=8", "model.num_heads=2", "model.encoder.num_layers=1",
        "model.encoder.memory_layers=1", "model.dictionary.atoms=4"]
ROOT = str(Path(__file__).parents[1])  # the package, for the commands run as subprocesses
SETTINGS = ["train.max_epochs=2", "train.batch_size=8", "train.accumulation_steps=1",
            "train.progress=false"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from dhmd_graph.data.synthetic import write_synthetic

    path = tmp_path_factory.mktemp("data") / "tiny.pkl"
    return write_synthetic(path, "mosei", sizes={"train": 24, "valid": 8, "test": 8})


def train_args(data, out, *extra):
    return ["train", "--data", data, "--out", out, "--seeds", "3", "--set", *TINY, *SETTINGS,
            *extra]


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory):
    """A finished run: one seed, one epoch."""
    run = tmp_path_factory.mktemp("trained") / "run"
    assert main([str(a) for a in train_args(tiny_data, run, "--set", "train.max_epochs=1")]) == 0
    return run


@pytest.fixture
def run_copy(trained, tmp_path):
    return shutil.copytree(trained, tmp_path / "run")


def dhmd(capsys, *argv) -> tuple[int, str]:
    """``dhmd ARGV``: its exit status and what it wrote to stderr."""
    capsys.readouterr()
    status = main([str(arg) for arg in argv])
    return status, capsys.readouterr().err


def assert_one_line(err: str, command: str, *words: str) -> None:
    assert err.startswith(f"dhmd {command}: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for word in words:
        assert word in err, (word, err)


def leftovers(folder) -> list:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp") or
            (p.name.startswith(".") and p.is_dir())]


# 1. --resume where there is no run ###################################################

def test_resume_refuses_a_missing_folder_or_config(tmp_path, capsys, monkeypatch):
    from dhmd_graph.data import synthetic

    def never(*args, **kwargs):
        raise AssertionError("a refused --resume must not generate the default dataset")

    monkeypatch.setattr(synthetic, "default_dataset_path", never)
    missing = tmp_path / "missing"
    status, err = dhmd(capsys, "train", "--out", missing, "--resume")
    assert status == 2 and not missing.exists()
    assert_one_line(err, "train", str(missing), "does not exist")

    killed = tmp_path / "killed"  # killed before its config.json was written
    (killed / "seed_1").mkdir(parents=True)
    status, err = dhmd(capsys, "train", "--out", killed, "--resume")
    assert status == 2
    assert_one_line(err, "train", str(killed), "has no config.json", "--overwrite")
    assert [p.name for p in killed.iterdir()] == ["seed_1"]


# 2. One writer per run folder ########################################################

def test_a_second_writer_is_refused(tiny_data, tmp_path, capsys):
    from dhmd_graph.train.run_folder import RunFolder

    run = tmp_path / "run"
    with RunFolder(run).lock():  # another writer holds the run
        status, err = dhmd(capsys, *train_args(tiny_data, run))
    assert status == 2
    assert_one_line(err, "train", str(run), "being written by another process",
                    f"pid {os.getpid()}")
    assert not (run / "config.json").exists() and RunFolder(run).seeds() == []


def test_the_lock_of_a_killed_writer_does_not_block_resume(run_copy, capsys):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "from dhmd_graph.train.run_folder import RunFolder\n"
         "with RunFolder(sys.argv[1]).lock():\n"
         "    print('locked', flush=True)\n"
         "    time.sleep(120)\n", str(run_copy)],
        stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=ROOT))
    with holder:
        try:
            assert holder.stdout.readline().strip() == "locked"
            status, err = dhmd(capsys, "train", "--out", run_copy, "--resume")
            assert status == 2 and "being written by another process" in err
        finally:
            holder.send_signal(signal.SIGKILL)  # no clean-up runs: the lock file stays
    status, err = dhmd(capsys, "train", "--out", run_copy, "--resume")
    assert status == 0, err


@pytest.mark.slow
def test_two_trainings_started_together_have_one_writer(tiny_data, tmp_path):
    run = tmp_path / "run"
    command = [sys.executable, "-m", "dhmd_graph.cli",
               *map(str, train_args(tiny_data, run))]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    processes = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outcomes = sorted((p.wait(timeout=300), p.communicate()[1]) for p in processes)
    assert [status for status, _ in outcomes] == [0, 2], outcomes
    # Refused by the lock while the first writes, or (on a busy machine, if it reached the
    # folder only after the first had finished) as an existing run: one writer either way.
    assert ("being written by another process" in outcomes[1][1]
            or "already holds a run" in outcomes[1][1]), outcomes
    log = (run / "seed_3" / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in log] == [1, 2]


# 3. A checked cache ##################################################################

@pytest.fixture
def cache(tiny_data, tmp_path):
    path = tmp_path / "cache"
    assert main(["convert", str(tiny_data), str(path)]) == 0
    return path


def _rewrite(cache, split, name, array):
    """Replace one cache file, keeping the manifest's shape and dtype up to date."""
    np.save(cache / split / name, array)
    manifest = json.loads((cache / "manifest.json").read_text())
    manifest["splits"][split]["files"][name].update(shape=list(array.shape),
                                                    dtype=array.dtype.str)
    (cache / "manifest.json").write_text(json.dumps(manifest))


def test_cache_labels_out_of_range_are_refused(cache, capsys):
    labels = np.load(cache / "train" / "labels.npy")
    np.save(cache / "train" / "labels.npy", np.full_like(labels, 100.0))
    status, err = dhmd(capsys, "describe", cache)
    assert status == 2
    assert_one_line(err, "describe", "labels.npy", "label outside the label range", "100.0")


def test_cache_checksum_is_checked_on_request_and_on_conversion(cache, tiny_data, capsys):
    manifest = json.loads((cache / "manifest.json").read_text())
    manifest["splits"]["valid"]["files"]["labels.npy"]["sha256"] = "0" * 64
    (cache / "manifest.json").write_text(json.dumps(manifest))
    status, err = dhmd(capsys, "describe", cache, "--verify")
    assert status == 2
    assert_one_line(err, "describe", "labels.npy", "checksum mismatch")
    status, err = dhmd(capsys, "convert", tiny_data, cache)  # same source: checked, not kept
    assert status == 2 and "checksum mismatch" in err


def test_cache_nan_features_are_a_data_error_not_a_nan_loss(cache, tmp_path, capsys):
    features = np.load(cache / "train" / "features.audio.npy", mmap_mode="r+")
    features[:, 0, 0] = np.nan
    features.flush()
    del features
    status, err = dhmd(capsys, "describe", cache, "--verify")
    assert status == 2 and "features.audio.npy" in err
    status, err = dhmd(capsys, *train_args(cache, tmp_path / "run"))
    assert status == 2
    assert_one_line(err, "train", "NaN or infinite values", "field 'audio'", str(cache))


def test_cache_string_features_are_refused(cache, capsys):
    text = np.load(cache / "test" / "features.text.npy")
    _rewrite(cache, "test", "features.text.npy", np.full(text.shape, "x"))
    status, err = dhmd(capsys, "describe", cache)
    assert status == 2
    assert_one_line(err, "describe", "features.text.npy", "wrong kind of array")


def test_cache_without_a_split_is_refused(cache, tmp_path, capsys):
    manifest = json.loads((cache / "manifest.json").read_text())
    del manifest["splits"]["test"]
    (cache / "manifest.json").write_text(json.dumps(manifest))
    for command in (["describe", cache], train_args(cache, tmp_path / "run")):
        status, err = dhmd(capsys, *command)
        assert status == 2
        assert_one_line(err, command[0], "missing split", "split 'test'")
    assert not (tmp_path / "run").exists()


# 4. Temporary files ##################################################################

def test_planted_temporary_names_redirect_no_write(tiny_data, tmp_path, capsys):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    run = tmp_path / "run"
    run.mkdir()
    for name in (".config.json.tmp", ".results.json.tmp", ".log.jsonl.tmp"):
        (run / name).symlink_to(victim)
    status, err = dhmd(capsys, *train_args(tiny_data, run, "--set", "train.max_epochs=1"))
    assert status == 0, err
    assert victim.read_text() == "precious"
    assert json.loads((run / "config.json").read_text())["preset"] == "mosei"


def test_resume_removes_the_leftovers_of_killed_writes(run_copy, capsys):
    seed = run_copy / "seed_3"
    leftover = [run_copy / ".config.json.k1s9a0.tmp", seed / ".last.pt.x7q2mz.tmp"]
    for path in leftover:
        path.write_bytes(b"half a file")
    (seed / "notes.txt").write_text("mine")
    status, err = dhmd(capsys, "train", "--out", run_copy, "--resume")
    assert status == 0, err
    assert not any(path.exists() for path in leftover)
    assert (seed / "notes.txt").read_text() == "mine"


# 5. Untrusted checkpoints ############################################################

class _Marker:
    """Loading this object's pickle would create a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _save(state, path):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    path.write_bytes(buffer.getvalue())


def _bad_checkpoint(kind, path, marker):
    """Make ``path`` (a checkpoint of the tiny run) a bad checkpoint of ``kind``."""
    original = path.read_bytes()
    state = torch.load(path, weights_only=True)
    if kind == "code":
        _save({"model": _Marker(marker), "meta": state["meta"]}, path)
    elif kind == "torchscript":
        with warnings.catch_warnings():  # torch.jit is deprecated, its archives still exist
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(path))
    elif kind == "truncated":
        path.write_bytes(original[: len(original) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("model = 'best'\n")
    elif kind == "shapes":
        name = next(iter(state["model"]))
        _save(dict(state, model=dict(state["model"], **{name: torch.zeros(3)})), path)
    elif kind == "huge":  # a header declaring an 8192-wide, 96-layer model
        model = dict(state["meta"]["model"], width=8192, num_heads=8,
                     encoder=dict(state["meta"]["model"]["encoder"], num_layers=96,
                                  memory_layers=96))
        _save(dict(state, meta=dict(state["meta"], model=model)), path)


KINDS = ["code", "torchscript", "truncated", "empty", "text", "shapes", "huge"]


@pytest.mark.parametrize("kind", KINDS)
def test_bad_best_checkpoint_in_eval_and_inspect(kind, run_copy, tmp_path, capsys):
    best = run_copy / "seed_3" / "best.pt"
    _bad_checkpoint(kind, best, tmp_path / "marker")
    for command in (["eval", run_copy], ["inspect", run_copy, "--pca"]):
        status, err = dhmd(capsys, *command)
        assert status == 2
        assert_one_line(err, command[0], f"checkpoint '{best}'")
        assert "weights_only" not in err
    assert not (tmp_path / "marker").exists()


def test_a_huge_declared_model_alone_is_refused_without_building_it(run_copy, tmp_path,
                                                                    capsys):
    alone = tmp_path / "alone.pt"
    shutil.copy(run_copy / "seed_3" / "best.pt", alone)  # no run config to compare with
    _bad_checkpoint("huge", alone, None)
    status, err = dhmd(capsys, "eval", alone)  # 1.7e12 parameters if it were built
    assert status == 2
    assert_one_line(err, "eval", str(alone), "not those of the configured model")


@pytest.mark.parametrize("kind", ["code", "truncated", "shapes", "huge"])
def test_bad_last_checkpoint_on_resume(kind, run_copy, tmp_path, capsys):
    seed = run_copy / "seed_3"
    (seed / "metrics.json").unlink()  # the seed continues from last.pt
    _bad_checkpoint(kind, seed / "last.pt", tmp_path / "marker")
    status, err = dhmd(capsys, "train", "--out", run_copy, "--resume")
    assert status == 2
    assert_one_line(err, "train", f"checkpoint '{seed / 'last.pt'}'")
    assert "weights_only" not in err and not (tmp_path / "marker").exists()


# 6. Configurations ###################################################################

@pytest.mark.parametrize("file, message", [
    ({"train": {"max_epochs": True}}, "TrainConfig.max_epochs: expected an integer"),
    ({"aligned": "false"}, "key 'aligned': expected true or false"),
    ({"train": {"lr": "0.1"}}, "TrainConfig.lr: expected a number"),
    ({"train": {"seeds": "1111"}}, "TrainConfig.seeds: expected a list of integers"),
    ({"colour": "red"}, "unknown key(s) ['colour']"),
    ({"model": {"modalities": [{"name": "text", "input_dim": "768"}]}},
     "ModalityConfig.input_dim: expected an integer"),
    ("{not json", "not a JSON file"),
])
def test_bad_config_file_is_refused_before_anything_is_written(file, message, tiny_data,
                                                               tmp_path, capsys):
    config = tmp_path / "config.json"
    config.write_text(file if isinstance(file, str) else json.dumps(file))
    status, err = dhmd(capsys, *train_args(tiny_data, tmp_path / "run", "--config", config))
    assert status == 2
    assert_one_line(err, "train", str(config), message)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("setting, message", [
    ("train.num_workers=100000", "TrainConfig.num_workers: expected an integer in [0,"),
    ("train.monitor=Foo", "TrainConfig.monitor_mode: 'auto' needs a known metric name"),
    ("train.monitor=Foo train.monitor_mode=min",
     "TrainConfig.monitor: expected one of the metrics"),
    ("train.device=cuda", "CUDA is not available"),
    ("train.seeds=1111", "TrainConfig.seeds: expected a list of integers"),
])
def test_bad_setting_is_refused_before_anything_is_written(setting, message, tiny_data,
                                                           tmp_path, capsys):
    if setting.endswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    status, err = dhmd(capsys, *train_args(tiny_data, tmp_path / "run", "--set",
                                           *setting.split()))
    assert status == 2
    assert_one_line(err, "train", message)
    assert not (tmp_path / "run").exists()


# 7. Resource bombs ###################################################################

def test_a_pickle_of_shared_rows_is_refused_quickly(tmp_path, capsys, monkeypatch):
    from dhmd_graph.data import checks

    monkeypatch.setattr(checks, "MIN_BUDGET", 1 << 20)  # a small budget: a fast test
    row = [0.0] * 768
    steps = [row] * 50  # one shared row: 50 x 768 values from 768 in the file
    n = 24
    split = {"id": np.array([f"v{i}$_$0" for i in range(n)], dtype=object),
             "text": [steps] * n, "audio": np.zeros((n, 50, 74), np.float32),
             "vision": np.zeros((n, 50, 35), np.float32),
             "regression_labels": np.zeros(n)}
    path = tmp_path / "shared.pkl"
    path.write_bytes(pickle.dumps({"train": split, "valid": split, "test": split}))
    status, err = dhmd(capsys, "describe", path)
    assert status == 2
    assert_one_line(err, "describe", str(path), "declares more data than it holds",
                    "field 'text'", "DHMD_EXPANSION_LIMIT")


class _Terabyte:
    """Unpickles to an array of a terabyte (numpy's own reconstruction function)."""

    def __reduce__(self):
        from numpy._core.multiarray import _reconstruct

        return _reconstruct, (np.ndarray, (10**12,), b"b")


def test_a_pickle_declaring_a_terabyte_is_refused(tmp_path, capsys):
    path = tmp_path / "terabyte.pkl"
    path.write_bytes(pickle.dumps({"train": {"text": _Terabyte()}}))
    status, err = dhmd(capsys, "describe", path)
    assert status == 2
    assert_one_line(err, "describe", str(path), "declares more data than it holds")


# 8. Full disk and signals ############################################################

def _full_disk_after(calls: int, write):
    """``write`` wrapped to fail with ENOSPC (after writing half) from call ``calls`` on."""
    count = [0]

    def full(obj, file, *args, **kwargs):
        count[0] += 1
        if count[0] < calls:
            return write(obj, file, *args, **kwargs)
        if hasattr(file, "write"):
            file.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")
    return full


def test_train_on_a_full_disk_keeps_the_last_checkpoint(tiny_data, tmp_path, capsys,
                                                        monkeypatch):
    run = tmp_path / "run"
    monkeypatch.setattr(torch, "save", _full_disk_after(3, torch.save))  # epoch 2's first
    status, err = dhmd(capsys, *train_args(tiny_data, run))
    monkeypatch.undo()
    assert status == 1
    assert_one_line(err, "train", "disk full", str(run / "seed_3"), "--resume")
    assert leftovers(run) == []
    assert torch.load(run / "seed_3" / "last.pt", weights_only=True)["epoch"] == 1


def test_convert_on_a_full_disk_leaves_nothing(tiny_data, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(np, "save", _full_disk_after(4, np.save))
    status, err = dhmd(capsys, "convert", tiny_data, tmp_path / "out" / "cache")
    assert status == 1
    assert_one_line(err, "convert", "disk full", ".npy")
    assert list((tmp_path / "out").iterdir()) == []


def test_synth_on_a_full_disk_leaves_no_hidden_folder(tmp_path, capsys, monkeypatch):
    def full(handle, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full, raising=False)
    status, err = dhmd(capsys, "synth", tmp_path / "out" / "data.pkl", "--sizes", "20,8,8")
    assert status == 1
    assert_one_line(err, "synth", "disk full")
    assert list((tmp_path / "out").iterdir()) == []


def test_ctrl_c_during_a_checkpoint_write(tiny_data, tmp_path, capsys, monkeypatch):
    def interrupted(obj, file, *args, **kwargs):
        file.write(b"half a checkpoint")
        raise KeyboardInterrupt

    run = tmp_path / "run"
    monkeypatch.setattr(torch, "save", interrupted)
    status, err = dhmd(capsys, *train_args(tiny_data, run))
    monkeypatch.undo()
    assert status == 1
    assert_one_line(err, "train", "interrupted", "--resume")
    assert leftovers(run) == [] and not (run / "seed_3" / "best.pt").exists()


def test_sigterm_during_synth_removes_its_scratch_folder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    command = [sys.executable, "-m", "dhmd_graph.cli", "synth", str(out / "data.pkl"),
               "--sizes", "5000,500,500"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True,
                               env=dict(os.environ, PYTHONPATH=ROOT))
    deadline = time.monotonic() + 60
    while not list(out.iterdir()) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # wait until it writes its hidden scratch folder
    process.send_signal(signal.SIGTERM)
    err = process.communicate(timeout=60)[1]
    status = process.returncode
    assert status == 1, err
    assert_one_line(err, "synth", "interrupted by SIGTERM", "temporary files were removed")
    assert list(out.iterdir()) == []


# 9. Errors found when the data is read, not after an epoch ###########################

def test_splits_of_other_widths_fail_at_once(tmp_path, capsys):
    rng = np.random.default_rng(0)

    def split(audio_width):
        n = 6
        return {"id": np.array([f"v{i}$_$0" for i in range(n)], dtype=object),
                "text": rng.normal(size=(n, 4, 6)).astype(np.float32),
                "audio": rng.normal(size=(n, 5, audio_width)).astype(np.float32),
                "vision": rng.normal(size=(n, 3, 5)).astype(np.float32),
                "regression_labels": np.linspace(-3, 3, n)}

    path = tmp_path / "data.pkl"
    path.write_bytes(pickle.dumps({"train": split(2), "valid": split(3), "test": split(2)}))
    for command in (["describe", path], ["convert", path, tmp_path / "cache"]):
        status, err = dhmd(capsys, *command)
        assert status == 2
        assert_one_line(err, command[0], str(path), "split 'valid'", "feature widths")
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("words", [7, "a sentence"])
def test_misa_words_that_are_not_a_list(words, tmp_path, capsys):
    rng = np.random.default_rng(0)
    for name in ("train", "dev", "test"):
        sample = ((np.arange(3), rng.normal(size=(3, 47)), rng.normal(size=(3, 74)),
                   ["i", "love", "it"]), np.array([[0.5]]), f"{name}[0]")
        bad = ((sample[0][:3] + (words,)), sample[1], sample[2])
        (tmp_path / f"{name}.pkl").write_bytes(
            pickle.dumps([sample, bad] if name == "train" else [sample]))
    status, err = dhmd(capsys, "describe", tmp_path)
    assert status == 2
    assert_one_line(err, "describe", "train.pkl", "words of sample 1", "a list of strings")
