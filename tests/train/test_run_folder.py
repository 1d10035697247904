"""The run folder's one owner: layout, the writer's lock, preparing and reading a run."""

import json

import pytest

from dhmd_graph.train import RunExistsError, RunFolder, RunFolderError, RunLockedError
from dhmd_graph.train.run_folder import SeedFolder, find_checkpoints, read_log


def test_layout(tmp_path):
    run = RunFolder(tmp_path / "run")
    seed = run.seed(1111)
    assert (run.config_path.name, run.results_path.name) == ("config.json", "results.json")
    assert seed.path == tmp_path / "run" / "seed_1111"
    assert [p.name for p in (seed.best, seed.last, seed.log, seed.metrics)] == [
        "best.pt", "last.pt", "log.jsonl", "metrics.json"]
    assert seed.checkpoint("last") == seed.last
    assert run.seeds() == [] and run.run_files() == []
    for s in (10, 9):
        run.seed(s).path.mkdir(parents=True)
    (run.path / "seed_x").mkdir()
    assert run.seeds() == [9, 10]  # numeric order, not 'seed_10' < 'seed_9'


def test_one_writer_at_a_time(tmp_path):
    run = RunFolder(tmp_path / "run")
    with run.lock():
        with pytest.raises(RunLockedError, match="being written by another process"), \
                RunFolder(tmp_path / "run").lock():
            pass
    with run.lock():  # released at the end of the block
        pass


def test_prepare(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    run.prepare()  # a new folder
    run.write_config({"train": {}})
    run.seed(1).path.mkdir()
    (run.seed(1).path / ".best.pt.abc.tmp").write_bytes(b"half")
    with pytest.raises(RunExistsError, match="config.json, seed_1"):
        run.prepare()
    run.prepare(resume=True)
    assert not (run.seed(1).path / ".best.pt.abc.tmp").exists()  # a killed write's leftover
    run.prepare(overwrite=True)
    assert run.run_files() == []
    with pytest.raises(RunFolderError, match="has no config.json"):
        run.prepare(resume=True)
    with pytest.raises(ValueError, match="choose one"):
        run.prepare(resume=True, overwrite=True)


@pytest.mark.parametrize("content, message", [
    (None, "has no config.json"),
    ("{broken", "not a readable run configuration"),
    ("[1, 2]", "holds a list, not a JSON object"),
])
def test_read_config_names_what_is_wrong(tmp_path, content, message):
    run = RunFolder(tmp_path)
    if content is not None:
        run.config_path.write_text(content)
    with pytest.raises(RunFolderError, match=message):
        run.read_config()
    with pytest.raises(RunFolderError, match="does not exist"):
        RunFolder(tmp_path / "missing").read_config()


def test_seed_records_and_logs(tmp_path):
    seed = SeedFolder(tmp_path)
    seed.write_log([{"epoch": 1}])
    seed.append_log({"epoch": 2})
    assert seed.read_log() == [{"epoch": 1}, {"epoch": 2}]
    seed.log.write_text('{"epoch": 1}\n\n[3]\n')
    with pytest.raises(RunFolderError, match="line 3 of the training log"):
        read_log(seed.log)
    seed.metrics.write_text(json.dumps({"seed": 1}))
    with pytest.raises(RunFolderError, match="not a seed record"):
        seed.read_metrics()


def test_find_checkpoints(tmp_path):
    run = RunFolder(tmp_path / "run")
    for s in (2, 1):
        run.seed(s).path.mkdir(parents=True)
        run.seed(s).best.write_bytes(b"")
    assert find_checkpoints(run.path) == [run.seed(1).best, run.seed(2).best]
    assert find_checkpoints(run.path, seed=2) == [run.seed(2).best]
    assert find_checkpoints(run.seed(2).path) == [run.seed(2).best]
    assert find_checkpoints(run.seed(2).best) == [run.seed(2).best]
    with pytest.raises(RunFolderError, match="no checkpoint seed_3/best.pt"):
        find_checkpoints(run.path, seed=3)
    with pytest.raises(RunFolderError, match="dhmd train"):
        find_checkpoints(tmp_path / "empty")
