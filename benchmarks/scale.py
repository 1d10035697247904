r"""One MOSEI-size epoch from the memory-mapped cache: wall time and peak memory.

Question: can a 2-core machine train DHMD on a dataset of CMU-MOSEI's size
(16326/1871/4659 samples, aligned, 50 steps, 768/74/35 features) from the
memory-mapped cache, and how much memory does the training process need?

The script (1) writes the synthetic MOSEI pickle with
:func:`~dhmd_graph.data.write_synthetic` and converts it once with
:func:`~dhmd_graph.data.convert_to_cache` (both skipped when the cache exists; the
pickle is deleted after conversion unless ``--keep-pickle``), then (2) starts a
**fresh subprocess** that opens the cache with :func:`~dhmd_graph.data.load_cache`
and runs one epoch the way :class:`~dhmd_graph.train.Trainer` does (shuffled
batches of 16, :meth:`~dhmd_graph.DHMD.training_step`, gradients accumulated over
10 batches, value clipping 0.6, Adam), followed by prediction on the validation
split at batch 64.

Memory is reported for that subprocess only, so neither the conversion nor the
parent's imports count:

* ``peak_rss_mib``: ``ru_maxrss``, the resident-set high-water mark. It includes
  the **file-backed pages of the memory-mapped cache** that the epoch touched;
  the kernel may drop those at any time, and processes reading the same cache
  share them.
* ``peak_anon_mib`` / ``peak_file_mib``: the largest ``RssAnon`` (private memory:
  interpreter, torch, model, optimiser state, activations) and ``RssFile``
  (mapped file pages) seen by sampling ``/proc/self/status`` every 0.1 s.

``--max-steps N`` stops the epoch after ``N`` batches (and the validation after the
same share of its batches) and extrapolates the epoch time linearly; such rows say
``extrapolated: true`` and their memory covers only the part that ran.

Run ``python benchmarks/scale.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import (
    QUICK_OVERRIDES,
    format_table,
    markdown_table,
    measured_line,
    peak_rss_mib,
    write_results,
)

MOSEI_SIZES = {"train": 16326, "valid": 1871, "test": 4659}
QUICK_SIZES = {"train": 32, "valid": 8, "test": 8}
TARGET_PEAK_RSS_MIB = 2048
DEFAULT_WORKDIR = Path(tempfile.gettempdir()) / "dhmd_graph_scale"


def prepare_cache(workdir: Path, sizes: dict[str, int], *, keep_pickle: bool) -> dict:
    """Writes the synthetic MOSEI pickle and its cache under ``workdir`` unless present."""
    from dhmd_graph.data import convert_to_cache, write_synthetic

    tag = "-".join(str(sizes[split]) for split in ("train", "valid", "test"))
    cache_dir = workdir / f"mosei_aligned_{tag}_cache"
    timings: dict = {"cache_dir": str(cache_dir)}
    if (cache_dir / "manifest.json").is_file():
        return timings | {"reused": True}
    pickle_path = workdir / f"mosei_aligned_{tag}.pkl"
    start = time.perf_counter()
    write_synthetic(pickle_path, "mosei", aligned=True, sizes=sizes, seed=0)
    timings["write_synthetic_s"] = time.perf_counter() - start
    timings["pickle_mib"] = pickle_path.stat().st_size / 2**20
    start = time.perf_counter()
    convert_to_cache(pickle_path, cache_dir)
    timings["convert_to_cache_s"] = time.perf_counter() - start
    timings["cache_mib"] = sum(p.stat().st_size for p in cache_dir.rglob("*")) / 2**20
    if not keep_pickle:
        pickle_path.unlink()
    return timings | {"reused": False}


class MemorySampler(threading.Thread):
    """Samples ``RssAnon`` and ``RssFile`` of this process every ``interval`` seconds."""

    def __init__(self, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.peak_kib = {"RssAnon": 0, "RssFile": 0}
        self._done = threading.Event()

    def sample(self) -> None:
        with open("/proc/self/status") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key in self.peak_kib:
                    self.peak_kib[key] = max(self.peak_kib[key], int(value.split()[0]))

    def run(self) -> None:
        while not self._done.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self._done.set()
        self.join()
        self.sample()


def run_epoch(cache_dir: str, *, max_steps: int | None, threads: int,
              overrides: list[str], accumulation_steps: int = 10) -> dict:
    """The worker: one training epoch and one validation pass from the cache."""
    sampler = MemorySampler()
    sampler.start()
    import torch
    from torch import nn
    from torch.utils.data import DataLoader

    from dhmd_graph.config import apply_overrides
    from dhmd_graph.data import collate, load_cache
    from dhmd_graph.model import DHMD
    from dhmd_graph.presets import preset
    from dhmd_graph.train import evaluating

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    after_import_mib = peak_rss_mib()
    splits = load_cache(cache_dir)
    train_set, valid_set = splits["train"], splits["valid"]
    model = DHMD(apply_overrides(preset("mosei", aligned=True), overrides))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    train_loader = DataLoader(train_set, batch_size=16, shuffle=True, collate_fn=collate)
    valid_loader = DataLoader(valid_set, batch_size=64, collate_fn=collate)
    train_batches = len(train_loader) if max_steps is None else min(max_steps, len(train_loader))
    share = train_batches / len(train_loader)
    valid_batches = max(1, math.ceil(share * len(valid_loader)))

    model.train()
    start = time.perf_counter()
    for index, batch in enumerate(train_loader):
        if index == train_batches:
            break
        loss = model.training_step(batch)["loss"]
        (loss / accumulation_steps).backward()
        if (index + 1) % accumulation_steps == 0 or index + 1 == train_batches:
            nn.utils.clip_grad_value_(model.parameters(), 0.6)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    train_s = time.perf_counter() - start

    start = time.perf_counter()
    with evaluating(model):
        for index, batch in enumerate(valid_loader):
            if index == valid_batches:
                break
            model.predict_step(batch)
    valid_s = time.perf_counter() - start
    sampler.stop()
    return {
        "train_batches": train_batches,
        "train_batches_per_epoch": len(train_loader),
        "valid_batches": valid_batches,
        "valid_batches_per_epoch": len(valid_loader),
        "train_s": train_s,
        "valid_s": valid_s,
        "train_samples_per_s": min(train_batches * 16, len(train_set)) / train_s,
        "after_import_rss_mib": after_import_mib,
        "peak_rss_mib": peak_rss_mib(),
        "peak_anon_mib": sampler.peak_kib["RssAnon"] / 1024,
        "peak_file_mib": sampler.peak_kib["RssFile"] / 1024,
    }


def markdown_report(rows: list[dict], machine: dict, measured_at: dict | None = None) -> str:
    """The row as the Markdown table of ``benchmarks/README.md``: epoch times, training
    throughput and the peaks of the training process's memory."""
    return "\n".join([measured_line(machine, measured_at), "", markdown_table([
        ("samples", lambda r: r["samples"] + " (extrapolated)" * bool(r["extrapolated"])),
        ("epoch (s)", lambda r: f"{r['epoch_s']:.0f}"),
        ("train (s)", lambda r: f"{r['train_epoch_s']:.0f}"),
        ("validation (s)", lambda r: f"{r['valid_epoch_s']:.1f}"),
        ("train samples/s", lambda r: f"{r['train_samples_per_s']:.1f}"),
        ("peak RSS (MiB)", lambda r: f"{r['peak_rss_mib']:.0f}"),
        ("peak anonymous (MiB)", lambda r: f"{r['peak_anon_mib']:.0f}"),
        ("peak mapped file (MiB)", lambda r: f"{r['peak_file_mib']:.0f}"),
        ("after imports (MiB)", lambda r: f"{r['after_import_rss_mib']:.0f}"),
    ], rows)])


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tiny dataset, one layer")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR,
                        help="where the synthetic pickle and cache are kept")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="stop after this many batches and extrapolate the epoch")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--keep-pickle", action="store_true")
    parser.add_argument("--override", nargs="*", default=[])
    parser.add_argument("--output-dir", default=None)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    overrides = list(args.override)
    if args.quick:
        overrides += QUICK_OVERRIDES

    if args.worker is not None:  # the subprocess: print the measurement as JSON
        result = run_epoch(args.worker, max_steps=args.max_steps, threads=args.threads,
                           overrides=overrides)
        print(json.dumps(result))
        return [result]

    sizes = QUICK_SIZES if args.quick else MOSEI_SIZES
    preparation = prepare_cache(args.workdir, sizes, keep_pickle=args.keep_pickle)
    print(f"cache: {preparation}", flush=True)
    command = [sys.executable, str(Path(__file__).resolve()), "--worker",
               preparation["cache_dir"], "--threads", str(args.threads)]
    if args.max_steps is not None:
        command += ["--max-steps", str(args.max_steps)]
    if overrides:
        command += ["--override", *overrides]
    start = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"scale worker failed ({completed.returncode}):\n{completed.stderr}")
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    process_s = time.perf_counter() - start

    extrapolated = result["train_batches"] < result["train_batches_per_epoch"]
    train_epoch_s = result["train_s"] * result["train_batches_per_epoch"] / result["train_batches"]
    valid_epoch_s = result["valid_s"] * result["valid_batches_per_epoch"] / result["valid_batches"]
    row = {
        "samples": "/".join(str(sizes[s]) for s in ("train", "valid", "test")),
        "extrapolated": extrapolated,
        "train_epoch_s": train_epoch_s,
        "valid_epoch_s": valid_epoch_s,
        "epoch_s": train_epoch_s + valid_epoch_s,
        "train_samples_per_s": result["train_samples_per_s"],
        "peak_rss_mib": result["peak_rss_mib"],
        "peak_anon_mib": result["peak_anon_mib"],
        "peak_file_mib": result["peak_file_mib"],
        "after_import_rss_mib": result["after_import_rss_mib"],
        "target_peak_rss_mib": TARGET_PEAK_RSS_MIB,
        "rss_target_met": result["peak_rss_mib"] < TARGET_PEAK_RSS_MIB,
        "worker_process_s": process_s,
        **{f"worker_{k}": v for k, v in result.items() if k.endswith("batches") or
           k.endswith("per_epoch") or k in ("train_s", "valid_s")},
    }
    print(format_table([row], ["samples", "extrapolated", "epoch_s", "train_epoch_s",
                               "valid_epoch_s", "train_samples_per_s", "peak_rss_mib",
                               "peak_anon_mib", "peak_file_mib", "after_import_rss_mib"]))
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                if k not in ("output_dir", "worker")}
    settings["override"] = overrides
    path = write_results("scale_quick" if args.quick else "scale", [row], settings=settings,
                         output_dir=args.output_dir,
                         extra={"preparation": preparation, "full_epoch_command":
                                "python benchmarks/scale.py"},
                         report=markdown_report)
    print(f"wrote {path}")
    return [row]


if __name__ == "__main__":
    main()
