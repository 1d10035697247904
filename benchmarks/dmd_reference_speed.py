r"""The DMD reference code next to our ``dmd`` preset: the same model? how fast each?

Question: on the same machine, in the same sitting, on the same synthetic batch, how many
training samples per second does the DMD reference code take on CPU, how many does our
``preset(..., reference="dmd")``, and what is the ratio?

The reference is **your own checkout** of https://github.com/mdswyz/DMD, given with
``--dmd-src PATH``; nothing of it is copied or vendored here, and CI never needs it. The
harness imports its modules from that path and builds, from its ``config/config.json``,
the model (``trains/singleTask/model/dmd.py``, with ``use_bert=False``: we feed both
models the same 768-d text features) and the two graph distillation kernels with the
settings of its ``run.py``. To import and run it on CPU without editing the checkout, the
harness

- stubs ``pynvml`` (GPU selection) and, where it is not installed, ``transformers`` (only
  its BERT encoder imports it, and that encoder is not built);
- makes ``Tensor.cuda()`` return the tensor itself while it builds and runs the reference
  (its distillation kernels and losses call ``.cuda()``).

Its training step is the reference's (``trains/singleTask/DMD.py``): the forward pass,
both kernels, the L1 task losses, reconstruction, cycle, margin (its ``HingeLoss``) and
both GD losses with its weights, backward, value clipping at 0.6, an Adam step. One term
differs: its orthogonality call passes 3-D tensors to ``CosineEmbeddingLoss``, which
current PyTorch rejects, so the harness computes it per time step, as we do.
Both sides take one optimiser step per batch (as ``train_step.py`` does), so the
reference's accumulation over 10 batches is not part of either timing.

Before timing, a parity check copies the reference's weights into our model (float64,
eval mode, one batch) and prints the largest difference of the prediction and of every
loss term; the parameter counts must match (the reference's minus ``proj_cosine_*`` and
the edge scorers' biases). Then the training steps are timed in alternating runs, so that load hits all alike.

The full DHMD model (the default preset of each dataset, what users train) is timed in
the same runs: the three training steps alternate run by run
(:func:`common.time_interleaved`), and so do the three batch-1 predictions in eval mode
(ours: :meth:`~dhmd_graph.model.DHMD.predict_step`; the reference: its test loop's forward
call). Speed-ups and latency ratios are medians of the per-run ratios to the reference.

Run ``python benchmarks/dmd_reference_speed.py --dmd-src ~/src/DMD`` in a quiet window
(``--quick``: a tiny model and one repeat, to smoke-test the harness).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import sys
import types
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from common import (
    format_table,
    markdown_table,
    measured_line,
    time_interleaved,
    write_results,
)
from torch import nn
from train_step import LENGTHS, TrainingStep, random_batch

from dhmd_graph.allocator import keep_freed_memory
from dhmd_graph.config import DHMDConfig, apply_overrides
from dhmd_graph.data.batch import MultimodalBatch
from dhmd_graph.model import DHMD, dhmd_objective
from dhmd_graph.presets import preset

REFERENCE_ORDER = ("text", "vision", "audio")
"""The reference's modality order (l, v, a) in its concatenations and graphs."""
SHORT = {"text": "l", "audio": "a", "vision": "v"}
GD_SETTINGS = {  # run.py:122-160
    "homogeneous": {"gd_size": 64, "prior": [0, 0, 1, 0, 1, 0], "module": "homo", "repr": 1},
    "heterogeneous": {"gd_size": 32, "prior": [0, 0, 1, 0, 1, 1], "module": "", "repr": 2},
}
QUICK = {"width": 8, "num_heads": 2, "layers": 1}


# Importing the checkout ###############################################################


PATCH_CUDA = True
"""Whether :func:`cpu_cuda` patches ``Tensor.cuda`` (``benchmarks/gpu.py`` turns it off to
run the reference on a GPU as written)."""


@contextlib.contextmanager
def cpu_cuda() -> Iterator[None]:
    """``Tensor.cuda()`` returns the tensor itself (the reference calls it on CPU tensors),
    while :data:`PATCH_CUDA` is set."""
    if not PATCH_CUDA:
        yield
        return
    original = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    try:
        yield
    finally:
        torch.Tensor.cuda = original


def load_reference(dmd_src: Path) -> types.SimpleNamespace:
    """The reference's model, kernel and loss classes, imported from ``dmd_src``."""
    if not (dmd_src / "trains" / "singleTask" / "model" / "dmd.py").is_file():
        raise SystemExit(f"--dmd-src: {dmd_src} is not a checkout of mdswyz/DMD (no "
                         "trains/singleTask/model/dmd.py); clone https://github.com/mdswyz/DMD")
    stubs = {"pynvml": {}}
    if importlib.util.find_spec("transformers") is None:
        stubs["transformers"] = {name: None for name in ("BertModel", "BertTokenizer",
                                                         "RobertaModel", "RobertaTokenizer")}
    for name, attributes in stubs.items():
        if name not in sys.modules:
            module = types.ModuleType(name)
            module.__dict__.update(attributes)
            sys.modules[name] = module
    # Its position buffer is resized on every longer sequence, with a warning each time.
    warnings.filterwarnings("ignore", message="The number of elements in the out tensor")
    sys.path.insert(0, str(dmd_src))
    try:
        return types.SimpleNamespace(
            DMD=importlib.import_module("trains.singleTask.model.dmd").DMD,
            homo=importlib.import_module(
                "trains.singleTask.distillnets.get_distillation_kernel_homo").DistillationKernel,
            hetero=importlib.import_module(
                "trains.singleTask.distillnets.get_distillation_kernel").DistillationKernel,
            HingeLoss=importlib.import_module("trains.singleTask.HingeLoss").HingeLoss,
            softmax=importlib.import_module("trains.singleTask.misc").softmax,
            config=json.loads((dmd_src / "config" / "config.json").read_text()),
        )
    finally:
        sys.path.remove(str(dmd_src))


def build_reference(ref: types.SimpleNamespace, name: str, aligned: bool,
                    quick: bool) -> tuple[nn.Module, nn.Module, nn.Module]:
    """The reference model and its homogeneous and heterogeneous kernels."""
    settings = ref.config["dmd"]["datasetParams"][name] | ref.config["dmd"]["commonParams"]
    if quick:
        settings |= {"dst_feature_dim_nheads": [QUICK["width"], QUICK["num_heads"]],
                     "nlevels": QUICK["layers"]}
    args = types.SimpleNamespace(**(settings | {
        "use_bert": False, "dataset_name": name, "need_data_aligned": aligned,
        "feature_dims": ref.config["datasetCommonParams"][name]["aligned"]["feature_dims"]}))
    width = args.dst_feature_dim_nheads[0]
    with cpu_cuda():
        model = ref.DMD(args)
        kernels = [
            getattr(ref, gd["module"] or "hetero")(
                n_classes=1, hidden_size=gd["repr"] * width, gd_size=gd["gd_size"],
                to_idx=[0, 1, 2], from_idx=[0, 1, 2], gd_prior=ref.softmax(gd["prior"], 0.25),
                gd_reg=10, w_losses=[1, 10], metric="l1", alpha=1 / 8, hyp_params=args)
            for gd in GD_SETTINGS.values()
        ]
    return model, *kernels


def our_config(name: str, aligned: bool, quick: bool) -> DHMDConfig:
    config = preset(name, aligned, reference="dmd")
    if quick:
        config = apply_overrides(config, [
            f"width={QUICK['width']}", f"num_heads={QUICK['num_heads']}",
            f"encoder.num_layers={QUICK['layers']}",
            f"encoder.memory_layers={max(QUICK['layers'], 3)}"])  # dmd.py:89-91: max(nlevels, 3)
    return config


# The reference's training objective (trains/singleTask/DMD.py:81-175) ##################


def reference_terms(ref, model, homo, hetero, batch: MultimodalBatch) -> dict[str, torch.Tensor]:
    """The reference's loss terms on ``batch`` (its data layout: padded to its lengths)."""
    inputs = {}
    for name, x in batch.features.items():
        length = model.len_l if name == "text" else getattr(model, f"len_{SHORT[name]}")
        inputs[name] = F.pad(x, (0, 0, 0, length - x.shape[1]))  # (B, T, d_m)
    labels = batch.labels.view(-1, 1)
    with cpu_cuda():
        out = model(inputs["text"], inputs["audio"], inputs["vision"], is_distill=True)
        short = [SHORT[name] for name in REFERENCE_ORDER]
        gd = {}
        for space, kernel, tag in (("homogeneous", homo, "homo"), ("heterogeneous", hetero,
                                                                    "hetero")):
            logits = torch.stack([out[f"logits_{m}_{tag}"] for m in short])
            reprs = torch.stack([out[f"repr_{m}_{tag}"] for m in short])
            edges, _ = kernel(logits, reprs)
            gd[space] = kernel.distillation_loss(logits, reprs, edges)  # (reg, logit, repr)
        l1 = nn.L1Loss()
        mse = lambda a, b: (a - b).pow(2).mean()  # noqa: E731  (its MSE)
        ort = sum(  # per time step: the reference's own call fails on current PyTorch
            F.cosine_similarity(out[f"s_{m}"], out[f"c_{m}"], dim=-1).clamp_min(0).mean()
            for m in short)
        feats = torch.stack([out[f"c_{m}_sim"] for m in short], dim=1).flatten(0, 1)
        ids = labels.repeat_interleave(3, dim=0)
        terms = {
            "task": sum(l1(out[key], labels) for key in
                        ["output_logit", "logits_c"] + [f"logits_{m}_{t}" for m in short
                                                        for t in ("homo", "hetero")]),
            "reconstruction": sum(mse(out[f"recon_{m}"], out[f"origin_{m}"]) for m in short),
            "cycle": sum(mse(out[f"s_{m}"].permute(1, 2, 0), out[f"s_{m}_r"]) for m in short),
            "orthogonality": ort,
            "margin": ref.HingeLoss()(ids, feats),
            "gd/homogeneous/logit": gd["homogeneous"][1],
            "gd/homogeneous/reg": gd["homogeneous"][0] / 10,  # ours are unweighted
            "gd/heterogeneous/logit": gd["heterogeneous"][1],
            "gd/heterogeneous/repr": gd["heterogeneous"][2] / 10,
            "gd/heterogeneous/reg": gd["heterogeneous"][0] / 10,
        }
    terms["loss"] = (terms["task"]
                     + 0.05 * (gd["homogeneous"][1] + gd["homogeneous"][0])
                     + 0.05 * (gd["heterogeneous"][1] + gd["heterogeneous"][2]
                               + gd["heterogeneous"][0])
                     + 0.1 * (terms["cycle"] + terms["reconstruction"]
                              + 0.1 * (terms["margin"] + terms["orthogonality"])))
    terms["prediction"] = out["output_logit"].squeeze(-1)
    return terms


class ReferenceStep:
    """One training step of the reference: objective, backward, clipping, Adam."""

    def __init__(self, ref, model, homo, hetero, lr: float = 1e-4, clip_value: float = 0.6):
        self.ref, self.modules = ref, (model, homo, hetero)
        self.parameters = [p for module in self.modules for p in module.parameters()]
        self.optimizer = torch.optim.Adam(self.parameters, lr=lr)
        self.clip_value = clip_value

    def __call__(self, batch: MultimodalBatch) -> None:
        for module in self.modules:
            module.train()
        reference_terms(self.ref, *self.modules, batch)["loss"].backward()
        nn.utils.clip_grad_value_(self.parameters, self.clip_value)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


# Weights: the reference's into ours ###################################################


def _blocks(order: list[int], size: int) -> torch.Tensor:
    """Index permutation that takes blocks of ``size`` in ``order``."""
    return torch.cat([torch.arange(b * size, (b + 1) * size) for b in order])


def copy_weights(model, homo, hetero, ours: DHMD) -> None:
    """Copies the reference's parameters into ``ours`` (same function, our layout)."""
    names = list(ours.modalities)
    d = ours.config.width
    state = {}

    def take(prefix: str, module: nn.Module) -> None:
        for key, value in module.state_dict().items():
            state[f"{prefix}.{key}"] = value

    def transformer(stacked: str, member: int, encoder: nn.Module) -> None:
        for i, layer in enumerate(encoder.layers):
            base = f"{stacked}.layers.{i}"
            pairs = {"in_projection.weight": layer.self_attn.in_proj_weight,
                     "in_projection.bias": layer.self_attn.in_proj_bias,
                     "out_projection.weight": layer.self_attn.out_proj.weight,
                     "out_projection.bias": layer.self_attn.out_proj.bias,
                     "norm_attention.weight": layer.layer_norms[0].weight,
                     "norm_attention.bias": layer.layer_norms[0].bias,
                     "norm_feedforward.weight": layer.layer_norms[1].weight,
                     "norm_feedforward.bias": layer.layer_norms[1].bias,
                     "feedforward_in.weight": layer.fc1.weight,
                     "feedforward_in.bias": layer.fc1.bias,
                     "feedforward_out.weight": layer.fc2.weight,
                     "feedforward_out.bias": layer.fc2.bias}
            for key, value in pairs.items():
                state.setdefault(f"{base}.{key}", {})[member] = value
        state.setdefault(f"{stacked}.norm.weight", {})[member] = encoder.layer_norm.weight
        state.setdefault(f"{stacked}.norm.bias", {})[member] = encoder.layer_norm.bias

    for m, name in enumerate(names):
        s = SHORT[name]
        state[f"projections.{m}.conv.weight"] = getattr(model, f"proj_{s}").weight
        state[f"decoupling.private.{m}.weight"] = getattr(model, f"encoder_s_{s}").weight[..., 0]
        state[f"decoupling.decoders.{m}.weight"] = getattr(model, f"decoder_{s}").weight[..., 0]
        take(f"margin_embeddings.{m}", getattr(model, f"align_c_{s}"))
        for mine, theirs in (("hidden", "proj1"), ("back", "proj2"), ("out", "out_layer")):
            take(f"spaces.homogeneous.heads.{m}.{mine}", getattr(model, f"{theirs}_{s}_low"))
            take(f"spaces.heterogeneous.heads.{m}.{mine}", getattr(model, f"{theirs}_{s}_high"))
        take(f"spaces.heterogeneous.fusion.{m}", getattr(model, f"weight_{s}"))
        transformer("shared_encoders", m, getattr(model, f"self_attentions_c_{s}"))
        transformer("memory_encoders", m, getattr(model, f"trans_{s}_mem"))
    state["decoupling.shared.weight"] = model.encoder_c.weight[..., 0]
    for p, (target, source) in enumerate(ours.pairs):
        transformer("cross_modal", p, getattr(
            model, f"trans_{SHORT[names[target]]}_with_{SHORT[names[source]]}"))
    # c_fusion is (l, v, a) in the reference, (text, audio, vision) here.
    to_ours = [REFERENCE_ORDER.index(name) for name in names]
    c = _blocks(to_ours, d)  # (3d,)
    head = torch.cat([_blocks(to_ours, 2 * d), 6 * d + c])  # fusion input (9d,)
    for prefix, theirs, perm in (("shared_head", ("proj1_c", "proj2_c", "out_layer_c"), c),
                                 ("fusion_head", ("proj1", "proj2", "out_layer"), head)):
        hidden, back, out = (getattr(model, n) for n in theirs)
        state[f"{prefix}.hidden.weight"] = hidden.weight[:, perm]
        state[f"{prefix}.hidden.bias"] = hidden.bias
        state[f"{prefix}.back.weight"] = back.weight[perm]
        state[f"{prefix}.back.bias"] = back.bias[perm]
        state[f"{prefix}.out.weight"] = out.weight[:, perm]
        state[f"{prefix}.out.bias"] = out.bias
    state["fusion_shared.weight"] = model.weight_c.weight[c][:, c]
    state["fusion_shared.bias"] = model.weight_c.bias[c]
    for space, kernel in (("homogeneous", homo), ("heterogeneous", hetero)):
        take(f"spaces.{space}.graph.lin_logit", kernel.W_logit)
        take(f"spaces.{space}.graph.lin_repr", kernel.W_repr)
        state[f"spaces.{space}.graph.lin_edge.weight"] = kernel.W_edge.weight
    ours_state = ours.state_dict()
    for key, value in state.items():
        if isinstance(value, dict):  # one member of a stacked parameter at a time
            value = torch.stack([value[g] for g in range(len(value))])
        ours_state[key].copy_(value.detach())
    missing = sorted(k for k, v in ours.named_parameters() if k not in state)
    if missing:
        raise RuntimeError(f"copy_weights: no reference weights for {missing}")


# Measurement ##########################################################################


def _count(modules) -> int:
    return sum(p.numel() for module in modules for p in module.parameters())


def parity(ref, name: str, aligned: bool, quick: bool, steps) -> dict:
    """Largest differences between the reference and ours on one batch (float64, eval)."""
    torch.manual_seed(0)
    model, homo, hetero = (m.double().eval() for m in build_reference(ref, name, aligned, quick))
    ours = DHMD(our_config(name, aligned, quick)).double().eval()
    unused = _count([model.proj_cosine_l, model.proj_cosine_v, model.proj_cosine_a]) + 2
    counts = {"reference": _count([model, homo, hetero]), "unused": unused,
              "ours": _count([ours])}
    if counts["reference"] - unused != counts["ours"]:
        raise RuntimeError(f"parameter counts differ: {counts}")
    copy_weights(model, homo, hetero, ours)
    batch = random_batch(ours.config, 4, steps).apply(lambda t: t.double()
                                                     if t.is_floating_point() else t)
    for x in batch.features.values():  # zero padding after a shorter length in some samples
        x[1, x.shape[1] // 2:] = 0.0
        x[3, x.shape[1] - 3:] = 0.0
    with torch.no_grad():
        expected = reference_terms(ref, model, homo, hetero, batch)
        output = ours(batch)
        found = dhmd_objective(output, batch, ours.config) | {"prediction": output.prediction}
    differences = {key: float((found[key] - value).abs().max()) for key, value in expected.items()}
    return {"counts": counts, "max_abs_difference": differences}


def full_config(name: str, aligned: bool, quick: bool) -> DHMDConfig:
    """The full model's preset (what users train), shrunk like :func:`our_config` with
    ``quick``."""
    config = preset(name, aligned)
    if quick:
        config = apply_overrides(config, [
            f"width={QUICK['width']}", f"num_heads={QUICK['num_heads']}",
            f"encoder.num_layers={QUICK['layers']}", f"encoder.memory_layers={QUICK['layers']}"])
    return config


def reference_predict(model: nn.Module, batch: MultimodalBatch) -> torch.Tensor:
    """The reference's prediction (its test loop's call, trains/singleTask/DMD.py:255)."""
    inputs = {}
    for name, x in batch.features.items():
        length = model.len_l if name == "text" else getattr(model, f"len_{SHORT[name]}")
        inputs[name] = F.pad(x, (0, 0, 0, length - x.shape[1]))  # (B, T, d_m)
    with cpu_cuda():
        return model(inputs["text"], inputs["audio"], inputs["vision"],
                     is_distill=True)["output_logit"]


MODELS = ("full", "dmd", "reference")
"""The three timed models: the full DHMD preset, our ``dmd`` preset, the reference code."""


def time_case(ref, name: str, aligned: bool, steps, *, quick: bool, batch_size: int,
              repeats: int, latency_repeats: int) -> dict:
    """Training samples/s of the three :data:`MODELS` in interleaved runs, and their
    batch-1 eval latency (interleaved too); ratios are per run, to the reference."""
    torch.manual_seed(0)
    full = DHMD(full_config(name, aligned, quick))
    dmd = DHMD(our_config(name, aligned, quick))
    reference = build_reference(ref, name, aligned, quick)
    steps_of = {"full": TrainingStep(full), "dmd": TrainingStep(dmd),
                "reference": ReferenceStep(ref, *reference)}
    batch = random_batch(dmd.config, batch_size, steps)
    timings, ratios = time_interleaved(
        [lambda step=steps_of[m]: step(batch) for m in MODELS],
        warmup=1, repeats=repeats, min_run_time=0)
    single = random_batch(dmd.config, 1, steps, seed=1)
    predict = {"full": lambda: full.predict_step(single), "dmd": lambda: dmd.predict_step(single),
               "reference": lambda: reference_predict(reference[0], single)}
    for module in (full, dmd, *reference):
        module.eval()
    with torch.no_grad():
        latencies, latency_ratios = time_interleaved(
            [predict[m] for m in MODELS], warmup=2, repeats=latency_repeats,
            min_run_time=0.05 if latency_repeats > 1 else 0)
    row = {"preset": name, "aligned": aligned, "lengths": "/".join(map(str, steps)),
           "batch_size": batch_size}
    for m, timing, ratio, latency, latency_ratio in zip(
            MODELS, timings, ratios, latencies, latency_ratios, strict=True):
        row[f"{m}_samples_per_s"] = batch_size / timing.median
        row[f"{m}_iqr_ms"] = timing.iqr * 1e3
        row[f"{m}_latency_ms"] = latency.median * 1e3
        if m != "reference":  # median over runs of reference time / ours
            row[f"{m}_speedup"] = 1.0 / ratio.median
            row[f"{m}_latency_ratio"] = latency_ratio.median
    return row


def markdown_report(rows: list[dict], machine: dict, settings: dict) -> str:
    """The rows as the Markdown table of ``benchmarks/README.md``."""
    allocator = ("Glibc's default allocator settings for both codes."
                 if settings.get("system_malloc") else
                 "Freed memory kept in the heap (dhmd_graph.allocator) for both codes.")
    def three(row: dict, key: str) -> str:  # full / dmd / reference
        return " / ".join(f"{row[f'{model}_{key}']:.1f}" for model in ("full", "dmd", "reference"))
    table = markdown_table([
        ("preset", lambda r: f"{r['preset']} {'aligned' if r['aligned'] else 'unaligned'}"),
        ("training samples/s: full / dmd / reference", lambda r: three(r, "samples_per_s")),
        ("full vs reference", lambda r: f"**{r['full_speedup']:.2f}x**"),
        ("dmd vs reference", lambda r: f"**{r['dmd_speedup']:.2f}x**"),
        ("batch-1 latency ms: full / dmd / reference", lambda r: three(r, "latency_ms")),
        ("full / reference", lambda r: f"**{r['full_latency_ratio']:.2f}**"),
        ("dmd / reference", lambda r: f"**{r['dmd_latency_ratio']:.2f}**"),
    ], rows, right=False)
    return f"{allocator} {measured_line(machine)}\n\n{table}"


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dmd-src", required=True, type=Path,
                        help="your checkout of https://github.com/mdswyz/DMD")
    parser.add_argument("--quick", action="store_true",
                        help="a tiny model, batch 2, one repeat (a smoke run)")
    parser.add_argument("--presets", nargs="+", default=["mosi", "mosei"],
                        choices=["mosi", "mosei"])
    parser.add_argument("--alignment", nargs="+", default=["aligned"],
                        choices=["aligned", "unaligned"])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=9, help="timed runs of each step")
    parser.add_argument("--latency-repeats", type=int, default=15,
                        help="timed runs of each batch-1 prediction")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--system-malloc", action="store_true",
                        help="keep glibc's allocator settings for both codes (default: "
                        "dhmd_graph.allocator.keep_freed_memory, as the dhmd entry points)")
    parser.add_argument("--output-dir", default=None)
    args = parser.parse_args(argv)
    if not args.system_malloc:
        keep_freed_memory()  # one process: the reference's step runs with it too
    if args.quick:
        args.presets, args.alignment, args.batch_size = ["mosi"], ["aligned"], 2
        args.repeats = args.latency_repeats = 1
    torch.set_num_threads(args.threads)
    ref = load_reference(args.dmd_src.expanduser().resolve())

    rows, checks = [], {}
    for name in args.presets:
        for alignment in args.alignment:
            aligned = alignment == "aligned"
            steps = LENGTHS[(name, aligned)]
            check = checks[f"{name}_{alignment}"] = parity(ref, name, aligned, args.quick, steps)
            print(f"{name} {alignment}: parameters {check['counts']}; largest difference "
                  f"(float64) {max(check['max_abs_difference'].values()):.2e}", flush=True)
            row = time_case(ref, name, aligned, steps, quick=args.quick,
                            batch_size=args.batch_size, repeats=args.repeats,
                            latency_repeats=args.latency_repeats)
            rows.append(row)
            print(f"{name} {alignment}: training speed-up over the reference: full "
                  f"{row['full_speedup']:.2f}x, dmd {row['dmd_speedup']:.2f}x; batch-1 "
                  f"latency / reference's: full {row['full_latency_ratio']:.2f}, dmd "
                  f"{row['dmd_latency_ratio']:.2f}", flush=True)
    print()
    print(format_table(rows))
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
                if k != "output_dir"}
    name = "dmd_reference_speed" + "_quick" * args.quick + "_system_malloc" * args.system_malloc
    path = write_results(name,
                         rows, settings=settings, output_dir=args.output_dir,
                         extra={"parity": checks},
                         report=markdown_report)
    print(f"wrote {path}")
    return rows


if __name__ == "__main__":
    main()
