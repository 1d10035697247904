"""The line the trainer prints after every epoch (issue 13: a long run must not look dead)."""

import re

import pytest
from boring import make_trainer, random_splits, read_log, tiny_config

LINE = re.compile(r"^seed 1  epoch (\d)/3  train loss (\d+\.\d{4})  valid MAE (\d+\.\d{4})"
                  r"( \(best\))?  lr (\S+)  (\d+\.\d) s$")


def test_one_line_per_epoch_with_the_logged_values(tmp_path, capsys):
    trainer = make_trainer(tmp_path, tiny_config(max_epochs=3, progress=True), random_splits())
    trainer.fit()
    captured = capsys.readouterr()
    lines = captured.out.splitlines()  # not a terminal: no progress bar, only the lines
    log = read_log(tmp_path / "log.jsonl")
    assert len(lines) == len(log) == 3 and captured.err == ""
    for line, record in zip(lines, log, strict=True):
        match = LINE.match(line)
        assert match, line
        assert int(match[1]) == record["epoch"]
        assert float(match[2]) == pytest.approx(record["train/loss"], abs=5e-5)
        assert float(match[3]) == pytest.approx(record["valid/MAE"], abs=5e-5)
        assert bool(match[4]) == record["improved"]
        assert float(match[5]) == pytest.approx(record["lr"], rel=0.05)
        assert float(match[6]) == pytest.approx(record["time_s"], abs=0.05)


def test_progress_off_prints_nothing(tmp_path, capsys):
    make_trainer(tmp_path, tiny_config(max_epochs=2), random_splits()).fit()
    assert capsys.readouterr().out == ""
