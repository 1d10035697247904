r"""The run folder's one owner: its files, its writer's lock, and every read and write.

A run folder, as :func:`~dhmd_graph.train.run_seeds` (``dhmd train``) writes it::

    RUN/config.json                the run's configuration: "train" and the caller's meta
    RUN/results.json               every seed's record, mean and std of each test metric
    RUN/seed_<s>/best.pt           the checkpoint selected on the validation split
    RUN/seed_<s>/last.pt           the last finished epoch (where --resume continues)
    RUN/seed_<s>/log.jsonl         one JSON record per finished epoch
    RUN/seed_<s>/metrics.json      the seed's selected epoch, validation and test metrics
    RUN/.dhmd.lock                 the writer's lock (empty but for the writer's pid)

**One writer.** :meth:`RunFolder.lock` holds an exclusive :func:`fcntl.flock` on
``.dhmd.lock`` for as long as a run writes; a second writer gets a
:class:`RunLockedError` at once. The kernel releases the lock when the process ends,
however it ends, so a lock left by a killed run never blocks ``--resume``. (``flock``
needs a local file system; over NFS it may not exclude.)

**Atomic writes.** Every file is written with :func:`~dhmd_graph.files.atomic_write`
(unique temporary files created exclusively in the folder, then renamed): a reader
sees a whole file or the previous one. Temporary files a killed writer left behind are
removed by :meth:`RunFolder.prepare` when the run is resumed or overwritten.

**Reading** never needs the lock: :meth:`RunFolder.read_config`,
:meth:`RunFolder.checkpoints` and :meth:`SeedFolder.read_log` raise a
:class:`RunFolderError` naming the file when it is missing or not what it should be.
To rebuild the trained model from a run, see :class:`dhmd_graph.trained.TrainedRun`.

Example:
    >>> run = RunFolder("runs/mosei")                          # doctest: +SKIP
    >>> run.read_config()["preset"], run.seeds()               # doctest: +SKIP
    ('mosei', [1111, 1112])
    >>> run.seed(1111).best                                    # doctest: +SKIP
    PosixPath('runs/mosei/seed_1111/best.pt')
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dhmd_graph.errors import RunExistsError, RunFolderError, RunLockedError, UserError
from dhmd_graph.files import atomic_write, exclusive_lock, naming_file, remove_leftovers

__all__ = ["RunExistsError", "RunFolder", "RunFolderError", "RunLockedError", "SeedFolder",
           "find_checkpoints", "read_log"]

_SEED_FOLDER = re.compile(r"seed_(\d+)")


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        raise RunFolderError(f"no {what} at '{path}'") from None
    except (OSError, ValueError) as error:
        raise RunFolderError(f"'{path}' is not a readable {what} ({type(error).__name__}: "
                             f"{error}); restore or delete it") from None


def read_log(path: str | os.PathLike) -> list[dict]:
    """The records of a training ``log.jsonl``, one dict per epoch (blank lines skipped).

    Raises:
        FileNotFoundError: There is no such file.
        RunFolderError: The file is not UTF-8 or a line is not a JSON object, naming
            the file and the line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"read_log: no training log at '{path}'; give a run folder "
                                "written by the trainer (it holds log.jsonl).")
    try:
        lines = path.read_bytes().decode().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise RunFolderError(f"cannot read the training log '{path}' ({error})") from None
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            raise RunFolderError(f"line {number} of the training log '{path}' is not a JSON "
                                 "object; restore the file or delete the line")
        records.append(record)
    return records


def _json_text(data: Any) -> str:
    return json.dumps(data, indent=2) + "\n"


class SeedFolder:
    r"""The files of one seed of a run: checkpoints, log and metrics.

    Args:
        path (str or PathLike): The seed's folder (``RUN/seed_<s>``, or any folder a
            :class:`~dhmd_graph.train.Trainer` writes into).
    """

    BEST, LAST, LOG, METRICS = "best.pt", "last.pt", "log.jsonl", "metrics.json"

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}('{self.path}')"

    @property
    def best(self) -> Path:
        """The checkpoint selected on the validation split."""
        return self.path / self.BEST

    @property
    def last(self) -> Path:
        """The checkpoint of the last finished epoch."""
        return self.path / self.LAST

    @property
    def log(self) -> Path:
        """``log.jsonl``, one record per finished epoch."""
        return self.path / self.LOG

    @property
    def metrics(self) -> Path:
        """``metrics.json``, written when the seed is done."""
        return self.path / self.METRICS

    def checkpoint(self, which: str = "best") -> Path:
        """The path of the ``"best"`` or ``"last"`` checkpoint (it may not exist yet)."""
        if which not in ("best", "last"):
            raise UserError(f"SeedFolder.checkpoint: expected 'best' or 'last', found {which!r}.")
        return self.best if which == "best" else self.last

    def read_metrics(self) -> dict:
        """The finished seed's record (``seed``, ``best_epoch``, ``valid``, ``test``)."""
        record = _read_json(self.metrics, "seed record (metrics.json)")
        if not (isinstance(record, dict) and isinstance(record.get("test"), dict)):
            raise RunFolderError(f"'{self.metrics}' is not a seed record (a JSON object with "
                                 "'test' metrics); delete it to run the seed's test again")
        return record

    def write_metrics(self, record: Mapping) -> None:
        atomic_write(self.metrics, _json_text(record))

    def read_log(self) -> list[dict]:
        """The epoch records of ``log.jsonl`` (see :func:`read_log`)."""
        return read_log(self.log)

    def write_log(self, records: Sequence[Mapping]) -> None:
        """(Re)write ``log.jsonl`` from ``records``, atomically."""
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write(self.log, "".join(json.dumps(record) + "\n" for record in records))

    def append_log(self, record: Mapping) -> None:
        """Add one epoch's record to ``log.jsonl``."""
        with naming_file(self.log), open(self.log, "a") as file:
            file.write(json.dumps(record) + "\n")


class RunFolder:
    r"""A run folder (see the module docstring for its layout and promises).

    Args:
        path (str or PathLike): The run folder (it need not exist yet).
    """

    CONFIG, RESULTS, LOCK = "config.json", "results.json", ".dhmd.lock"

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}('{self.path}')"

    @property
    def config_path(self) -> Path:
        return self.path / self.CONFIG

    @property
    def results_path(self) -> Path:
        return self.path / self.RESULTS

    def seed(self, seed: int) -> SeedFolder:
        """The folder of ``seed`` (it may not exist yet)."""
        return SeedFolder(self.path / f"seed_{int(seed)}")

    def seeds(self) -> list[int]:
        """The seeds that have a folder, in increasing order."""
        if not self.path.is_dir():
            return []
        found = (_SEED_FOLDER.fullmatch(p.name) for p in self.path.iterdir() if p.is_dir())
        return sorted(int(match.group(1)) for match in found if match)

    def run_files(self) -> list[Path]:
        """The files and seed folders that make ``path`` a run (empty for a new folder)."""
        files = [self.results_path, self.config_path]
        return [p for p in files if p.exists()] + [self.seed(s).path for s in self.seeds()]

    def read_config(self) -> dict:
        """``config.json`` as a dict.

        Raises:
            RunFolderError: The folder or its ``config.json`` is missing, or the file is
                not a JSON object, naming what is missing and what to do.
        """
        if not self.path.is_dir():
            found = "is not a folder" if self.path.exists() else "does not exist"
            raise RunFolderError(f"no run at '{self.path}': the folder {found}. Start a run "
                                 "there without --resume, or give the folder of a run")
        if not self.config_path.is_file():
            raise RunFolderError(
                f"'{self.path}' has no {self.CONFIG}, so there is no configuration to continue "
                "with (a run stopped before writing it, or not a run folder). Start the run "
                "again with --overwrite, or give the folder of an existing run")
        config = _read_json(self.config_path, "run configuration")
        if not isinstance(config, dict):
            raise RunFolderError(f"'{self.config_path}' holds a {type(config).__name__}, not "
                                 "a JSON object of settings")
        return config

    def write_config(self, config: Mapping) -> None:
        atomic_write(self.config_path, _json_text(config))

    def read_results(self) -> dict:
        results = _read_json(self.results_path, "run results")
        if not isinstance(results, dict):
            raise RunFolderError(f"'{self.results_path}' is not a JSON object of results")
        return results

    def write_results(self, results: Mapping) -> None:
        atomic_write(self.results_path, _json_text(results))

    def checkpoints(self, which: str = "best") -> dict[int, Path]:
        """The existing ``best.pt`` (or ``last.pt``) of every seed, by seed."""
        paths = {seed: self.seed(seed).checkpoint(which) for seed in self.seeds()}
        return {seed: path for seed, path in paths.items() if path.is_file()}

    @contextmanager
    def lock(self) -> Iterator[RunFolder]:
        """Hold the run's exclusive writer lock (creating the folder) while in the block.

        Raises:
            RunLockedError: Another process holds the lock.
        """
        self.path.mkdir(parents=True, exist_ok=True)

        def busy(holder: str) -> RunLockedError:
            return RunLockedError(f"'{self.path}' is being written by another process (pid "
                                  f"{holder}); wait for it to finish, or choose another --out")

        with exclusive_lock(self.path / self.LOCK, busy):
            yield self

    def prepare(self, *, resume: bool = False, overwrite: bool = False) -> None:
        """Make the folder ready for a writer; call it while holding :meth:`lock`.

        A new folder is left as it is. ``resume`` needs the run's ``config.json`` and
        removes the temporary files of killed writes; ``overwrite`` deletes the run's
        files and seed folders (and leftovers).

        Raises:
            RunExistsError: The folder holds a run and neither ``resume`` nor
                ``overwrite`` is set.
            RunFolderError: ``resume`` without a ``config.json``.
            ValueError: Both ``resume`` and ``overwrite``.
        """
        if resume and overwrite:
            raise UserError("choose one of resume (continue the run) and overwrite (replace it)")
        old = self.run_files()
        if resume:
            self.read_config()
        elif old and not overwrite:
            raise RunExistsError(
                f"'{self.path}' already holds a run ({', '.join(p.name for p in old)}); "
                "pass --resume to continue it, --overwrite to replace it, or choose another --out"
            )
        elif old:
            for path in old:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        for folder in [self.path, *(self.seed(s).path for s in self.seeds())]:
            remove_leftovers(folder)


def find_checkpoints(target: str | os.PathLike, seed: int | None = None,
                     which: str = "best") -> list[Path]:
    r"""The checkpoints a command was pointed at: a ``.pt`` file itself, the ``best.pt``
    (or ``last.pt``) of a seed folder, or those of every seed (or of ``seed``) of a run
    folder, in seed order.

    Raises:
        RunFolderError: There is no such checkpoint, naming what was looked for.
    """
    target = Path(target)
    if target.is_file():
        return [target]
    folder = SeedFolder(target)
    if seed is None and folder.checkpoint(which).is_file():
        return [folder.checkpoint(which)]
    found = RunFolder(target).checkpoints(which)
    if seed is not None:
        found = {s: path for s, path in found.items() if s == seed}
    if not found:
        name = f"{which}.pt"
        wanted = f"seed_{seed}/{name}" if seed is not None else f"{name} or seed_*/{name}"
        raise RunFolderError(f"no checkpoint {wanted} in '{target}'; give a run folder written "
                             "by 'dhmd train', one of its seed folders, or a .pt file")
    return list(found.values())
