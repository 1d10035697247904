r"""The quickstart's training time with each OpenMP setting, on a quiet machine and beside
a busy process.

Question: how long does the first quickstart command's training
(``python examples/mosei_dhmd.py``) take with the old default (GNU OpenMP's own wait
policy: a waiting thread spins for about 3 ms), with the new default of our entry points
(``OMP_WAIT_POLICY=PASSIVE``, see :mod:`dhmd_graph.openmp`) and with one thread, when the
machine is quiet and when one core is taken by a busy process?

Each cell is one run of the example in a fresh subprocess, timed from start to exit
(imports, data loading, 2 seeds x 3 epochs, testing; the synthetic data is generated once
beforehand and is not timed). The child's environment holds none of the user's
``OMP_*``/``MKL_*`` variables, then:

- ``old``: ``OMP_NUM_THREADS=<torch's default thread count>`` and no wait policy. Setting
  the count the code would pick anyway reproduces the code before the new default (an
  entry point leaves the environment alone once the user has set a variable);
- ``new``: nothing, so the example chooses ``OMP_WAIT_POLICY=PASSIVE`` itself;
- ``one-thread``: ``OMP_NUM_THREADS=1``;
- ``active`` (only when asked for): ``OMP_WAIT_POLICY=ACTIVE``, threads spin for minutes.

The busy process is a Python busy loop pinned to the last allowed core (``yes >
/dev/null`` would do the same). Runs alternate between the settings within each load, so
that drifting background load hits all alike; a run that exceeds ``--timeout`` is
stopped and reported as such. Measure on an otherwise quiet machine: other work on the
cores distorts every cell.

Run ``python benchmarks/quickstart_time.py`` (the full example: expect 1-2 hours with
the default timeout; ``--settings new,old --loads busy`` for a part) or ``--quick`` (the
example's ``--quick`` mode, a smoke run of the harness whose times mean nothing).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

from common import format_table, markdown_table, measured_line, write_results

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "mosei_dhmd.py"
SETTINGS = ("old", "new", "one-thread", "active")
LOADS = ("quiet", "busy")
CLEARED = ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "GOMP_SPINCOUNT",
           "OMP_PROC_BIND", "OMP_DYNAMIC")
"""Variables removed from every child's environment before the setting is applied."""
BUSY_LOOP = "while True:\n    pass"


def clean_environment() -> dict[str, str]:
    """This process's environment without the variables that steer OpenMP."""
    return {key: value for key, value in os.environ.items() if key not in CLEARED}


def default_threads() -> int:
    """The intra-op thread count torch picks when no variable tells it (a fresh process)."""
    done = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
                          env=clean_environment(), capture_output=True, text=True, check=True)
    return int(done.stdout.strip())


def setting_environment(setting: str, threads: int) -> dict[str, str]:
    """The child environment of one setting (see the module docstring)."""
    environment = clean_environment()
    if setting == "old":
        environment["OMP_NUM_THREADS"] = str(threads)
    elif setting == "one-thread":
        environment["OMP_NUM_THREADS"] = "1"
    elif setting == "active":
        environment["OMP_WAIT_POLICY"] = "ACTIVE"
    elif setting != "new":
        raise ValueError(f"quickstart_time: expected a setting of {SETTINGS}, found {setting!r}")
    return environment


@contextmanager
def busy_core(load: str):
    """A busy process on the last allowed core while the block runs (``load == 'busy'``)."""
    if load == "quiet":
        yield None
        return
    burner = subprocess.Popen([sys.executable, "-c", BUSY_LOOP])
    try:
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(burner.pid, {max(os.sched_getaffinity(0))})
        yield burner.pid
    finally:
        burner.kill()
        burner.wait()


def time_example(arguments: Sequence[str], environment: dict[str, str], timeout: float
                 ) -> dict[str, object]:
    """Runs the example once; its wall time, status and printed test MAE."""
    start = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, str(EXAMPLE), *arguments], env=environment,
                              capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"seconds": time.perf_counter() - start, "status": f"stopped at {timeout:.0f} s",
                "test_MAE": ""}
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        return {"seconds": seconds, "status": f"failed ({done.returncode}): "
                f"{done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ''}",
                "test_MAE": ""}
    found = re.search(r"^MAE\s+(\S+) ±", done.stdout, re.MULTILINE)
    return {"seconds": seconds, "status": "ok", "test_MAE": found[1] if found else ""}


def _load_example():
    spec = importlib.util.spec_from_file_location("mosei_dhmd_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _names(text: str, allowed: Sequence[str], option: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(names) - set(allowed))
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"{option}: expected comma-separated names of "
                                         f"{list(allowed)}, found {text!r}")
    return names


def main(argv: Sequence[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="the example's --quick mode: a smoke run of the harness")
    parser.add_argument("--settings", default="old,new,one-thread",
                        type=lambda text: _names(text, SETTINGS, "--settings"),
                        help=f"comma-separated, of {', '.join(SETTINGS)} "
                        "(default: old,new,one-thread)")
    parser.add_argument("--loads", default="quiet,busy",
                        type=lambda text: _names(text, LOADS, "--loads"),
                        help="comma-separated, of quiet, busy (default: both)")
    parser.add_argument("--timeout", type=float,
                        help="seconds before a run is stopped (default: 2400, 300 with --quick)")
    parser.add_argument("--output-dir", help="where to write the JSON (default: "
                        "benchmarks/results)")
    args = parser.parse_args(argv)
    timeout = args.timeout or (300.0 if args.quick else 2400.0)

    example = _load_example()
    sizes = example.QUICK_SIZES if args.quick else example.DEMO_SIZES
    from dhmd_graph.data.synthetic import default_dataset_path

    data = default_dataset_path("mosei", aligned=True, sizes=sizes, seed=0)  # not timed
    threads = default_threads()
    arguments = ["--quick"] if args.quick else []
    subprocess.run([sys.executable, str(EXAMPLE), "--help"], env=clean_environment(),
                   capture_output=True, check=True)  # warm the file cache for the imports

    rows = []
    for load in args.loads:
        with busy_core(load):
            for setting in args.settings:
                result = time_example(arguments, setting_environment(setting, threads), timeout)
                rows.append({"setting": setting, "load": load, **result})
                print(f"{setting:>10}  {load:>5}  {result['seconds']:8.1f} s  {result['status']}",
                      flush=True)
    quiet = {row["setting"]: row["seconds"] for row in rows if row["load"] == "quiet"}
    for row in rows:
        base = quiet.get(row["setting"])
        row["vs_quiet"] = row["seconds"] / base if base else ""

    print(f"\npython {EXAMPLE.relative_to(ROOT)} {' '.join(arguments)} ({data.name}); "
          f"torch's default threads: {threads}")
    print(format_table(rows, ["setting", "load", "seconds", "vs_quiet", "status", "test_MAE"]))
    write_results("quickstart_time_quick" if args.quick else "quickstart_time", rows,
                  settings={"quick": args.quick, "settings": args.settings,
                            "loads": args.loads, "timeout_s": timeout,
                            "default_threads": threads, "data": data.name},
                  output_dir=args.output_dir, report=markdown_report)
    return rows


def markdown_report(rows: list[dict], machine: dict, settings: dict,
                    measured_at: dict | None = None) -> str:
    """The rows as a Markdown table of the docs: per setting and load, the example's wall
    time from start to exit (or how it stopped) and the test MAE it printed."""
    def seconds(row: dict) -> str:
        return f"{row['seconds']:.1f} s" if row["status"] == "ok" else row["status"]
    example = "python examples/mosei_dhmd.py" + " --quick" * bool(settings.get("quick"))
    return "\n".join([
        measured_line(machine, measured_at),
        f"`{example}`, torch's default threads {settings['default_threads']}, "
        f"stopped after {settings['timeout_s']:.0f} s.", "",
        markdown_table([("setting", lambda r: r["setting"]), ("load", lambda r: r["load"]),
                        ("wall", seconds), ("test MAE", lambda r: r["test_MAE"])], rows,
                       right=False)])


if __name__ == "__main__":
    main()
