r"""Shared helpers of the benchmark scripts: machine facts, timing, memory, output.

What is measured, and how:

* **Time** (:func:`time_function`, :func:`time_pair`): wall-clock
  ``time.perf_counter`` over repeated runs after warm-up runs. Each run calls the
  function ``number`` times, ``number`` chosen so that one run lasts at least
  ``min_run_time`` seconds (as :mod:`timeit` does), and reports the time per call.
  The summary is the **median** and the **inter-quartile range** (IQR, q75 - q25)
  of the runs. :func:`time_pair` alternates two functions run by run so that
  background load hits both alike, and also reports the median of the per-run
  ratios.
* **Tensor memory** (:func:`peak_tensor_memory`): the peak, over one call, of the
  bytes held by tensors allocated by torch's CPU allocator during that call, above
  what was held when it started. Read from the allocation and free events of
  ``torch.profiler`` (``profile_memory=True``), summed in time order. It counts
  tensor storage only (activations, gradients, temporaries), not Python objects,
  allocator slack or fragmentation.
* **Process memory** (:func:`peak_rss_mib`): ``resource.getrusage(...).ru_maxrss``,
  the high-water mark of the resident set of a process, for whole runs started
  in a subprocess (everything the process ever touched: interpreter, libraries,
  data pages of memory-mapped files, allocator slack).

Every script writes its results with :func:`write_results`: the machine facts,
the command that reproduces them, and the rows of the table it printed. A script whose
table a page shows also has a ``markdown_report(...)`` function: it renders the block
of the page from the file's stored entries (its parameters are named after the file's
top-level keys, see :func:`render_report`), ``write_results(report=markdown_report)``
stores the result under ``"report"``, and ``python benchmarks/render.py FILE`` renders it
again from an existing file without measuring anything.
"""

from __future__ import annotations

import inspect
import json
import os
import platform
import resource
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "QUICK_OVERRIDES",
    "RESULTS_DIR",
    "Timing",
    "format_table",
    "machine_info",
    "markdown_table",
    "measured_line",
    "peak_rss_mib",
    "peak_tensor_memory",
    "render_report",
    "reproduce_command",
    "time_function",
    "time_pair",
    "write_results",
]

RESULTS_DIR = Path(__file__).resolve().parent / "results"

QUICK_OVERRIDES = [
    "width=12",
    "num_heads=2",
    "encoder.num_layers=1",
    "encoder.memory_layers=1",
    "dictionary.atoms=8",
]
"""Config overrides of every ``--quick`` run: a small model, so that the smoke runs of
the harness are fast (their timings mean nothing)."""


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    """Facts about the machine and software a measurement was taken on.

    Includes the 1/5/15-minute load average at the time of the call, since the
    machine may be shared and a load above the core count makes timings slower.
    """
    import torch_geometric

    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "cpu_model": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "torch": torch.__version__,
        "torch_geometric": torch_geometric.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": [round(value, 2) for value in load],
        "cuda_available": torch.cuda.is_available(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": _commit(),
    }


def _commit() -> str | None:
    """The checkout's commit (``+`` when the working tree has changes), if it is one."""
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=Path(__file__).parent, capture_output=True,
                              text=True, timeout=10).stdout.strip()
    try:
        head = git("rev-parse", "--short", "HEAD")
        return (head + ("+" if git("status", "--porcelain", "--untracked-files=no") else "")
                ) or None
    except (OSError, subprocess.SubprocessError):
        return None


@dataclass
class Timing:
    """Seconds per call over repeated runs: median, quartiles and all runs."""

    median: float
    q25: float
    q75: float
    number: int
    runs: list[float]

    @property
    def iqr(self) -> float:
        """The inter-quartile range ``q75 - q25`` in seconds."""
        return self.q75 - self.q25

    @classmethod
    def from_runs(cls, runs: Sequence[float], number: int) -> Timing:
        ordered = sorted(runs)
        if len(ordered) >= 2:
            q25, _, q75 = statistics.quantiles(ordered, n=4, method="inclusive")
        else:
            q25 = q75 = ordered[0]
        return cls(statistics.median(ordered), q25, q75, number, list(runs))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "iqr": self.iqr}


def _calibrate(fn: Callable[[], object], min_run_time: float) -> int:
    """The number of calls per run so that one run lasts at least ``min_run_time``."""
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-7)
    return max(1, int(min_run_time / once + 0.999))


def _run(fn: Callable[[], object], number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


def time_function(
    fn: Callable[[], object],
    *,
    warmup: int = 2,
    repeats: int = 9,
    min_run_time: float = 0.02,
) -> Timing:
    """Times ``fn()`` (seconds per call) over ``repeats`` runs after ``warmup`` calls.

    Args:
        fn (Callable): The function to time, without arguments.
        warmup (int, optional): Untimed calls first. (default: ``2``)
        repeats (int, optional): Timed runs. (default: ``9``)
        min_run_time (float, optional): The least duration of one run in seconds;
            fast functions are called several times per run. (default: ``0.02``)
    """
    for _ in range(warmup):
        fn()
    number = _calibrate(fn, min_run_time)
    return Timing.from_runs([_run(fn, number) for _ in range(repeats)], number)


def time_interleaved(
    functions: Sequence[Callable[[], object]],
    *,
    warmup: int = 2,
    repeats: int = 9,
    min_run_time: float = 0.02,
) -> tuple[list[Timing], list[Timing]]:
    """Times several functions in alternating runs (one run of each in turn, ``repeats``
    times), so that load affects all alike.

    Returns:
        (list[Timing], list[Timing]): The timing of each function, and the per-run ratio
        of each function's time to the last function's (dimensionless; the last ratio
        is 1).
    """
    for _ in range(warmup):
        for fn in functions:
            fn()
    numbers = [_calibrate(fn, min_run_time) for fn in functions]
    runs: list[list[float]] = [[] for _ in functions]
    for _ in range(repeats):
        for fn, number, times in zip(functions, numbers, runs, strict=True):
            times.append(_run(fn, number))
    timings = [Timing.from_runs(times, number) for times, number in zip(runs, numbers, strict=True)]
    ratios = [Timing.from_runs([a / b for a, b in zip(times, runs[-1], strict=True)], 1)
              for times in runs]
    return timings, ratios


def time_pair(
    first: Callable[[], object],
    second: Callable[[], object],
    *,
    warmup: int = 2,
    repeats: int = 9,
    min_run_time: float = 0.02,
) -> tuple[Timing, Timing, Timing]:
    """Times two functions in alternating runs (:func:`time_interleaved`).

    Returns:
        (Timing, Timing, Timing): The timing of ``first``, of ``second``, and the
        per-run ratio ``first / second`` (dimensionless, in the same structure).
    """
    (timing_first, timing_second), (ratio, _) = time_interleaved(
        [first, second], warmup=warmup, repeats=repeats, min_run_time=min_run_time)
    return timing_first, timing_second, ratio


def peak_tensor_memory(fn: Callable[[], object]) -> int:
    """Peak bytes of CPU tensor storage allocated during one call of ``fn()``.

    Counted above what was allocated when the call started, from the memory events
    of ``torch.profiler`` in time order; see the module docstring for what this
    includes and leaves out.
    """
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted(
        (event.start_ns(), event.nbytes())
        for event in prof.profiler.kineto_results.events()
        if event.name() == "[memory]" and event.device_type() == DeviceType.CPU
    )
    held = peak = 0
    for _, nbytes in events:
        held += nbytes
        peak = max(peak, held)
    return peak


def peak_rss_mib() -> float:
    """The peak resident set size of this process so far, in MiB (Linux ``ru_maxrss``)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reproduce_command(argv: Sequence[str] | None = None) -> str:
    """The command line that reproduces this run, from the repository root."""
    argv = sys.argv if argv is None else argv
    script = Path(argv[0])
    try:
        script = script.resolve().relative_to(Path.cwd())
    except ValueError:
        pass
    return shlex.join(["python", str(script), *argv[1:]])


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A plain-text table of ``rows`` (floats with 4 significant digits)."""
    if not rows:
        return "(no rows)"
    columns = list(columns or rows[0])

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value)

    body = [[cell(row.get(column, "")) for column in columns] for row in rows]
    widths = [max(len(column), *(len(line[i]) for line in body)) for i, column in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)) for line in body]
    return "\n".join(lines)


def markdown_table(columns: Sequence[tuple[str, Callable[[Mapping[str, Any]], Any]]],
                   rows: Sequence[Mapping[str, Any]], *, right: bool = True) -> str:
    """A Markdown table: one ``(header, cell)`` pair per column, ``cell(row)`` its text.

    The first column is left-aligned, the others right-aligned when ``right`` (numbers).
    """
    align = ["---"] + ["---:" if right else "---"] * (len(columns) - 1)
    lines = ["| " + " | ".join(header for header, _ in columns) + " |",
             "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(str(cell(row)) for _, cell in columns) + " |" for row in rows]
    return "\n".join(lines)


def measured_line(machine: Mapping[str, Any], measured_at: Mapping[str, Any] | None = None
                  ) -> str:
    """One sentence naming when, at which commit and on what a results file was measured.

    Args:
        machine (Mapping): The file's ``"machine"`` entry (:func:`machine_info`).
        measured_at (Mapping, optional): The file's ``"measured_at"`` entry, for files
            written before :func:`machine_info` recorded the commit: ``{"commit": ...,
            "source": ...}``, the commit the page named when the file was committed.
            (default: :obj:`None`)
    """
    commit = machine.get("commit")
    if commit:
        at = f"at commit {commit}"
    elif measured_at and measured_at.get("commit"):
        at = f"at commit {measured_at['commit']} ({measured_at['source']})"
    else:
        at = "at a commit the file does not record"
    load = machine.get("load_average") or ["?"]
    return (f"Measured {str(machine.get('time', '?'))[:10]} {at} on {machine['cpu_model']} "
            f"({machine['logical_cpus']} logical CPUs, {machine['torch_threads']} torch "
            f"threads), torch {machine['torch']}, 1-minute load average {load[0]} when "
            "the file was written:")


def render_report(markdown_report: Callable[..., str], results: Mapping[str, Any]) -> str:
    """Calls a script's ``markdown_report`` with the entries of a results file.

    Each parameter of ``markdown_report`` receives the file's top-level entry of the same
    name (``rows``, ``machine``, ``settings``, ``summary``, ...); a parameter with a default
    may be missing from the file.

    Raises:
        KeyError: When the file lacks an entry the function requires.
    """
    arguments = {}
    for name, parameter in inspect.signature(markdown_report).parameters.items():
        if name in results:
            arguments[name] = results[name]
        elif parameter.default is inspect.Parameter.empty:
            raise KeyError(f"{markdown_report.__module__}.markdown_report needs the entry "
                           f"{name!r}, which this results file does not have")
    return markdown_report(**arguments)


def write_results(
    name: str,
    rows: Sequence[dict[str, Any]],
    *,
    settings: dict[str, Any],
    output_dir: Path | str | None = None,
    extra: dict[str, Any] | None = None,
    report: str | Callable[..., str] | None = None,
) -> Path:
    """Writes ``{output_dir}/{name}.json`` with machine facts, command, settings and rows.

    Args:
        name (str): The file stem, e.g. ``"layer"`` or ``"layer_quick"``.
        rows (Sequence[dict]): The table rows.
        settings (dict): The script's parameters.
        output_dir (Path or str, optional): Where to write. :obj:`None` means
            ``benchmarks/results``. (default: :obj:`None`)
        extra (dict, optional): More top-level entries (findings, profiles).
            (default: :obj:`None`)
        report (str or Callable, optional): The rows as a page shows them (e.g. a
            Markdown table), under ``"report"``; a callable is the script's
            ``markdown_report``, called on the entries as they read back from the file
            (:func:`render_report`), as ``benchmarks/render.py`` calls it later. A page
            that pastes it marks the block
            ``<!-- rendered from benchmarks/results/<name>.json -->`` and
            ``tests/benchmarks/test_rendered_reports.py`` compares the two.
            (default: :obj:`None`)
    """
    directory = RESULTS_DIR if output_dir is None else Path(output_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    payload = {
        "benchmark": name,
        "command": reproduce_command(),
        "machine": machine_info(),
        "settings": settings,
        "rows": list(rows),
        **(extra or {}),
    }
    if report is not None:
        payload["report"] = (report if isinstance(report, str) else
                             render_report(report, json.loads(json.dumps(payload))))
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
