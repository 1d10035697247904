r"""How much memory does a MOSEI-size dataset cost: the pickle, or the memory-mapped cache?

A synthetic pickle in the MMSA layout of aligned CMU-MOSEI (16326/1871/4659 samples,
50 steps, text 768 + audio 74 + vision 35 float32 features, ~3.7 GiB, pickle
protocol 4 as the MMSA files use) is written to a scratch folder, and each step
below runs in a fresh subprocess that reports its own peak resident set size:

* ``baseline``: ``import dhmd_graph.data`` (Python, numpy, torch) and nothing else;
* ``load pickle``: ``load_mmsa(pickle)``, the arrays held in memory;
* ``convert``: ``convert_to_cache(pickle, cache)``, the one-off conversion;
* ``iterate cache``: ``load_cache(cache)`` and every split through a ``DataLoader``
  with ``collate``, batch size 64.

Peak RSS is ``VmHWM`` of ``/proc/self/status`` (``ru_maxrss`` elsewhere): everything
the process held at its peak, including the pages of memory-mapped files it had
read. Those pages belong to the page cache and the kernel drops them under memory
pressure, so for ``iterate cache`` the script also samples ``RssAnon`` (the
process's own memory) after every batch and reports its peak. The scratch folder
is deleted at the end.

Run ``python benchmarks/cache_memory.py`` (``--scale 0.25`` for a quarter of MOSEI,
``--quick`` for a tiny smoke run of the harness).
"""

from __future__ import annotations

import argparse
import json
import pickle
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MOSEI_SIZES = {"train": 16326, "valid": 1871, "test": 4659}
STEPS = 50
DIMS = {"text": 768, "audio": 74, "vision": 35}
BATCH_SIZE = 64
STAGES = ("baseline", "load pickle", "convert", "iterate cache")


def split_sizes(scale: float) -> dict[str, int]:
    """MOSEI's split sizes times ``scale`` (at least 8 samples each)."""
    return {split: max(8, round(n * scale)) for split, n in MOSEI_SIZES.items()}


def write_pickle(path: Path, sizes: dict[str, int], seed: int = 0) -> None:
    """An aligned MMSA-layout pickle with random features and labels on MOSEI's grid."""
    rng = np.random.default_rng(seed)
    data = {}
    for split, n in sizes.items():
        mask = (np.arange(STEPS) < rng.integers(5, STEPS + 1, size=(n, 1))).astype(np.float32)
        audio = rng.standard_normal((n, STEPS, DIMS["audio"]), dtype=np.float32)
        audio[rng.random((n, STEPS)) < 0.01, 0] = -np.inf  # as COVAREP does
        data[split] = {
            "id": np.array([f"video{i}$_${i % 7}" for i in range(n)], dtype=object),
            "raw_text": np.array([f"utterance {i}" for i in range(n)], dtype=object),
            "text": rng.standard_normal((n, STEPS, DIMS["text"]), dtype=np.float32),
            "text_bert": np.stack([mask * 100, mask, 0 * mask], axis=1),  # (n, 3, T)
            "audio": audio,
            "vision": rng.standard_normal((n, STEPS, DIMS["vision"]), dtype=np.float32),
            "regression_labels": rng.integers(-9, 10, size=n).astype(np.float32) / 3,
        }
    with path.open("wb") as file:
        pickle.dump(data, file, protocol=4)


def memory_mib(field: str) -> float | None:
    """A ``/proc/self/status`` field (``VmHWM``, ``RssAnon``) in MiB; ``None`` off Linux."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_rss_mib() -> float:
    """This process's peak resident set size in MiB."""
    peak = memory_mib("VmHWM")
    if peak is None:  # macOS reports bytes, Linux KiB
        scale = 1 / 2**20 if sys.platform == "darwin" else 1 / 1024
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    return peak


def run_stage(stage: str, workdir: Path) -> dict:
    """One measured step, in this (fresh) process."""
    import torch

    from dhmd_graph.data import collate, convert_to_cache, load_cache, load_mmsa

    pickle_path, cache_dir = workdir / "mosei.pkl", workdir / "cache"
    result: dict = {}
    start = time.perf_counter()
    if stage == "load pickle":
        datasets = load_mmsa(pickle_path)
        result["samples"] = sum(len(d) for d in datasets.values())
    elif stage == "convert":
        convert_to_cache(pickle_path, cache_dir)
    elif stage == "iterate cache":
        peak_anon, samples = 0.0, 0
        for dataset in load_cache(cache_dir).values():
            loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH_SIZE, collate_fn=collate)
            for batch in loader:
                samples += len(batch)
                peak_anon = max(peak_anon, memory_mib("RssAnon") or 0.0)
        result |= {"samples": samples, "peak_anon_mib": peak_anon}
    result |= {"seconds": time.perf_counter() - start, "peak_rss_mib": peak_rss_mib()}
    return result


def measure(stage: str, workdir: Path) -> dict:
    """Run one stage in a subprocess and return what it reports."""
    command = [sys.executable, __file__, "--stage", stage, "--workdir", str(workdir)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def folder_mib(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 2**20


STEP_LABELS = {
    "baseline": "baseline (`import dhmd_graph.data`)",
    "load pickle": "load pickle (`load_mmsa`)",
    "convert": "convert (`convert_to_cache`)",
    "iterate cache": f"iterate cache (`load_cache` + `DataLoader`, batch {BATCH_SIZE}, all splits)",
}


def markdown_report(rows: list[dict], machine: dict, pickle_mib: float, cache_mib: float,
                    measured_at: dict | None = None) -> str:
    """The rows as the Markdown table of ``benchmarks/README.md``: per step, the peak RSS
    of its subprocess, above the baseline's, the peak anonymous RSS and the seconds."""
    from common import markdown_table, measured_line  # not at import: the stages stay light

    def number(key: str, digits: int = 0):
        return lambda r: "" if r.get(key) is None else f"{r[key]:.{digits}f}"
    return "\n".join([
        measured_line(machine, measured_at),
        f"pickle {pickle_mib:.0f} MiB, cache {cache_mib:.0f} MiB.", "",
        markdown_table([("step", lambda r: STEP_LABELS.get(r["step"], r["step"])),
                        ("peak RSS (MiB)", number("peak_rss_mib")),
                        ("above baseline (MiB)", number("above_baseline_mib")),
                        ("peak anonymous RSS (MiB)", number("peak_anon_mib")),
                        ("seconds", lambda r: "" if r["step"] == "baseline"
                         else f"{r['seconds']:.1f}")], rows)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="fraction of MOSEI's sample counts (default: 1.0)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the harness")
    parser.add_argument("--scratch", type=Path, default=Path(tempfile.gettempdir()),
                        help="where the temporary pickle and cache go (default: the temp dir)")
    parser.add_argument("--output-dir", type=Path, default=None,
                        help="where the JSON goes (default: benchmarks/results)")
    parser.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage is not None:
        print(json.dumps(run_stage(args.stage, args.workdir)))
        return

    from common import format_table, write_results

    sizes = split_sizes(0.001 if args.quick else args.scale)
    workdir = Path(tempfile.mkdtemp(prefix="dhmd-cache-memory-", dir=args.scratch))
    try:
        start = time.perf_counter()
        write_pickle(workdir / "mosei.pkl", sizes)
        print(f"wrote {workdir / 'mosei.pkl'} ({folder_mib(workdir / 'mosei.pkl'):.0f} MiB) "
              f"in {time.perf_counter() - start:.0f} s", flush=True)
        rows = []
        for stage in STAGES:
            rows.append({"step": stage, **measure(stage, workdir)})
            print(f"{stage}: peak RSS {rows[-1]['peak_rss_mib']:.0f} MiB", flush=True)
        sizes_mib = {"pickle_mib": folder_mib(workdir / "mosei.pkl"),
                     "cache_mib": folder_mib(workdir / "cache")}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    for row in rows:
        row["above_baseline_mib"] = row["peak_rss_mib"] - rows[0]["peak_rss_mib"]
    columns = ["step", "peak_rss_mib", "above_baseline_mib", "peak_anon_mib", "seconds"]
    print(f"\nsplits {sizes}; pickle {sizes_mib['pickle_mib']:.0f} MiB, "
          f"cache {sizes_mib['cache_mib']:.0f} MiB")
    print(format_table(rows, columns))
    path = write_results("cache_memory_quick" if args.quick else "cache_memory", rows,
                         settings={"sizes": sizes, "steps": STEPS, "dims": DIMS,
                                   "batch_size": BATCH_SIZE, "pickle_protocol": 4},
                         output_dir=args.output_dir, extra=sizes_mib, report=markdown_report)
    print(f"results: {path}")


if __name__ == "__main__":
    main()
