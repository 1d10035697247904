r"""The GPU check and benchmark: one short script for a machine with a CUDA GPU.

Question: do the GPU paths work (the device tests, a whole training run through
``dhmd train``, CPU/GPU agreement of one forward pass), and how fast is DHMD there —
training samples/s, batch-1 latency and peak memory of the full model and of the ``dmd``
preset at the papers' batch size (16, the DMD reference's ``config.json``), in float32
and under bfloat16/float16 autocast, beside the DMD reference code's step where a
checkout is given (``--dmd-src``)?

It runs, in order, within a few minutes on one GPU:

1. ``pytest`` on the device tests (``tests/inspect/test_devices.py``; with a GPU they
   check a real ``cuda`` device instead of refusing a missing one);
2. the same random batch through the full model on CPU and GPU in float64, whose largest
   difference is printed (and must be below 1e-6);
3. ``dhmd train`` for one epoch on the embedded synthetic data with ``train.device=cuda``;
4. the timings of :func:`time_case` for MOSI and MOSEI aligned, every step and prediction
   followed by ``torch.cuda.synchronize()`` so that the clock sees the GPU's work.

On a machine without CUDA it says so and exits with status 1 without measuring anything.

Run ``python benchmarks/gpu.py`` (``--dmd-src ~/src/DMD`` to add the reference;
``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from common import format_table, time_interleaved, write_results
from train_step import LENGTHS, TrainingStep, random_batch

from dhmd_graph.model import DHMD
from dhmd_graph.presets import preset

ROOT = Path(__file__).resolve().parents[1]
PRECISIONS = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}
"""Autocast dtypes timed (``None``: no autocast)."""


def synchronized(fn):
    """``fn`` followed by :func:`torch.cuda.synchronize`."""
    def call():
        fn()
        torch.cuda.synchronize()
    return call


def autocast(dtype: torch.dtype | None):
    return (contextlib.nullcontext() if dtype is None
            else torch.autocast("cuda", dtype=dtype))


def check_tests() -> int:
    """Step 1: the device tests on this machine; returns pytest's exit status."""
    return subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            str(ROOT / "tests" / "inspect" / "test_devices.py")], cwd=ROOT)


def check_agreement(name: str) -> float:
    """Step 2: the largest difference of the prediction on CPU and GPU (float64, eval)."""
    torch.manual_seed(0)
    model = DHMD(preset(name, True)).double().eval()
    batch = random_batch(model.config, 4, LENGTHS[(name, True)]).apply(
        lambda t: t.double() if t.is_floating_point() else t)
    with torch.no_grad():
        expected = model(batch).prediction
        found = model.to("cuda")(batch.apply(lambda t: t.to("cuda"))).prediction.cpu()
    return float((found - expected).abs().max())


def check_training(quick: bool, device: str = "cuda") -> int:
    """Step 3: one epoch of ``dhmd train`` on the embedded data on ``device``; returns
    its exit status."""
    from dhmd_graph.cli import main

    overrides = [f"train.device={device}", "train.max_epochs=1"] + (["model.width=12"] if quick else [])
    with tempfile.TemporaryDirectory() as out:
        return main(["train", "--out", str(Path(out) / "run"), "--seeds", "1", "--set",
                     *overrides])


def time_case(name: str, batch_size: int, repeats: int, dmd_src: Path | None,
              quick: bool) -> list[dict]:
    """Step 4: training samples/s (interleaved), batch-1 latency and peak memory of the
    full model and the ``dmd`` preset (and the reference's step with ``dmd_src``), for
    every autocast dtype of :data:`PRECISIONS`."""
    device = torch.device("cuda")
    steps = (8, 8, 8) if quick else LENGTHS[(name, True)]
    models = {"full": DHMD(preset(name, True)).to(device),
              "dmd": DHMD(preset(name, True, reference="dmd")).to(device)}
    reference = None
    if dmd_src is not None:
        import dmd_reference_speed as harness
        harness.PATCH_CUDA = False  # its .cuda() calls move its tensors to the GPU, as written
        ref = harness.load_reference(dmd_src)
        modules = [m.to(device) for m in harness.build_reference(ref, name, True, quick)]
        reference = harness.ReferenceStep(ref, *modules)
    batch = random_batch(models["dmd"].config, batch_size, steps).apply(lambda t: t.to(device))
    single = random_batch(models["dmd"].config, 1, steps, seed=1).apply(lambda t: t.to(device))
    rows = []
    for precision, dtype in PRECISIONS.items():
        training = {m: TrainingStep(model) for m, model in models.items()}
        functions = {m: synchronized(lambda step=step, dtype=dtype: _autocast_call(step, batch, dtype))
                     for m, step in training.items()}
        if reference is not None and dtype is None:
            functions["reference"] = synchronized(lambda: reference(batch))
        names = list(functions)
        timings, ratios = time_interleaved([functions[m] for m in names], warmup=2,
                                           repeats=repeats, min_run_time=0)
        for m, timing in zip(names, timings, strict=True):
            row = {"preset": name, "model": m, "precision": precision,
                   "batch_size": batch_size,
                   "train_samples_per_s": batch_size / timing.median,
                   "train_iqr_ms": timing.iqr * 1e3}
            if m in models:
                model = models[m].eval()
                with torch.no_grad():
                    predict = synchronized(lambda model=model, dtype=dtype: _autocast_call(
                        model.predict_step, single, dtype))
                    latency = time_interleaved([predict], warmup=3, repeats=repeats,
                                               min_run_time=0.05)[0][0]
                    torch.cuda.reset_peak_memory_stats(device)
                    model.train()
                    _autocast_call(training[m], batch, dtype)
                    torch.cuda.synchronize()
                row["latency_b1_ms"] = latency.median * 1e3
                row["peak_train_memory_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
            if "reference" in names:
                row["time_over_reference"] = ratios[names.index(m)].median
            rows.append(row)
    return rows


def _autocast_call(fn, batch, dtype):
    with autocast(dtype):
        return fn(batch)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dmd-src", type=Path, default=None,
                        help="a checkout of https://github.com/mdswyz/DMD (adds its step)")
    parser.add_argument("--quick", action="store_true", help="short sequences, few repeats")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--output-dir", default=None)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("benchmarks/gpu.py: no CUDA device on this machine; nothing measured.")
        raise SystemExit(1)
    if args.quick:
        args.repeats = 2
    card = torch.cuda.get_device_name(0)
    print(f"GPU: {card}", flush=True)
    checks = {"tests_exit_status": check_tests()}
    checks["cpu_gpu_max_difference"] = check_agreement("mosi")
    checks["train_exit_status"] = check_training(args.quick)
    print(f"checks: {checks}", flush=True)
    rows = []
    for name in ("mosi", "mosei"):
        rows += time_case(name, args.batch_size, args.repeats,
                          args.dmd_src.expanduser().resolve() if args.dmd_src else None,
                          args.quick)
    print(format_table(rows))
    path = write_results("gpu_quick" if args.quick else "gpu", rows,
                         settings={k: str(v) for k, v in vars(args).items()},
                         output_dir=args.output_dir, extra={"checks": checks, "card": card})
    print(f"wrote {path}")
    if (checks["tests_exit_status"] != 0 or checks["train_exit_status"] != 0
            or not checks["cpu_gpu_max_difference"] < 1e-6):
        raise SystemExit(f"benchmarks/gpu.py: a GPU check failed: {checks}")
    return rows


if __name__ == "__main__":
    main()
