r"""What moves the main example's numbers: the CPU's kernels and the thread count.

Question: the first quickstart command (``python examples/mosei_dhmd.py``) prints test
metrics to four decimals; on which machines and settings does it print the same ones?

Each row is the example's default run cut to its first seed and first epoch (about a
minute), in a fresh subprocess, on the same data file (its SHA-256 is in the row), with:

- ``ATEN_CPU_CAPABILITY``: which of PyTorch's CPU kernels run (``avx2``, ``avx512``, or
  ``default``, the kernels without vector instructions). An Intel CPU with AVX-512 runs
  other kernels than this machine's AVX2 ones, so this variable stands in for a machine
  with another CPU;
- ``OMP_NUM_THREADS``: torch's thread count, which changes how sums are split.

The first setting runs twice: on one machine with one setting the run is bit-identical,
so any difference between rows is the setting's. Float sums in another order differ in the
last bits; training amplifies the difference epoch by epoch, so after one epoch it shows
in the third decimal and after three in the second.

Run ``python benchmarks/reproducibility.py`` (4 runs, about 5 minutes on 2 cores; the
synthetic data is generated once into ``DHMD_CACHE`` if it is not there).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import markdown_table, measured_line, write_results

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "mosei_dhmd.py"
SETTINGS = (
    ("AVX2 kernels, 2 threads", {"ATEN_CPU_CAPABILITY": "avx2", "OMP_NUM_THREADS": "2"}),
    ("AVX2 kernels, 2 threads, again", {"ATEN_CPU_CAPABILITY": "avx2", "OMP_NUM_THREADS": "2"}),
    ("kernels without vector instructions, 2 threads",
     {"ATEN_CPU_CAPABILITY": "default", "OMP_NUM_THREADS": "2"}),
    ("AVX2 kernels, 1 thread", {"ATEN_CPU_CAPABILITY": "avx2", "OMP_NUM_THREADS": "1"}),
)
"""(name, environment) of each run."""


def one_epoch(results: Path) -> int:
    """The example's default run, first seed, first epoch, writing ``--results``."""
    spec = importlib.util.spec_from_file_location("mosei_dhmd", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    example.DEMO = dataclasses.replace(example.DEMO, max_epochs=1,
                                       seeds=list(example.DEMO.seeds[:1]))
    return example.main(["--results", str(results)])


def run_setting(name: str, environment: dict[str, str], scratch: Path) -> dict:
    """One row: the example cut to one epoch in a subprocess with ``environment``."""
    results = scratch / f"{len(list(scratch.iterdir()))}.json"
    subprocess.run([sys.executable, __file__, "--child", str(results)], check=True,
                   env={**os.environ, **environment})
    found = json.loads(results.read_text())
    seed = found["results"]["seeds"][0]
    return {"setting": name, "cpu_capability": found["cpu_capability"],
            "threads": found["threads"], "data_sha256": found["data_sha256"],
            "valid_MAE": seed["valid"]["MAE"], "test_MAE": seed["test"]["MAE"],
            "test_Corr": seed["test"]["Corr"]}


def markdown_report(rows: list[dict], machine: dict) -> str:
    """The rows as the table of the docs' results page."""
    same_data = len({row["data_sha256"] for row in rows}) == 1
    lead = (f"{measured_line(machine)} the example's first seed after one epoch"
            f"{', on the same data file' if same_data else ''}.")
    table = markdown_table([
        ("setting", lambda row: row["setting"]),
        ("kernels", lambda row: row["cpu_capability"]),
        ("threads", lambda row: row["threads"]),
        ("valid MAE", lambda row: f"{row['valid_MAE']:.4f}"),
        ("test MAE", lambda row: f"{row['test_MAE']:.4f}"),
        ("test Corr", lambda row: f"{row['test_Corr']:.4f}"),
    ], rows)
    return f"{lead}\n\n{table}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--output-dir", help="where the results file goes (default: "
                        "benchmarks/results)")
    args = parser.parse_args(argv)
    if args.child:
        return one_epoch(args.child)
    rows = []
    with tempfile.TemporaryDirectory(prefix="reproducibility_") as scratch:
        for name, environment in SETTINGS:
            print(f"-- {name}", flush=True)
            rows.append(run_setting(name, environment, Path(scratch)))
    path = write_results("reproducibility", rows, settings={"settings": dict(SETTINGS)},
                         output_dir=args.output_dir, report=markdown_report)
    print(json.loads(path.read_text())["report"])
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
