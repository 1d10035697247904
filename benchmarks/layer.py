r"""GD-Unit layer: :class:`~dhmd_graph.nn.DynamicGraphDistill` versus a dense batch.

Question: what does writing the GD-Unit as a PyG message-passing layer over a
disjoint union of ``B`` modality graphs cost, compared with the same formulas (those of
``DynamicGraphDistill``'s docstring) written densely on ``(B, M, M)`` score tensors?

One step of either implementation is: node embedding ``h = [W_y y ; W_r r]``, edge
scores ``e = w^T [h_student ; h_teacher]`` on all ``M (M - 1)`` ordered pairs, the
learned weight ``E = softmax(e / tau)`` per graph, the prior weight ``p``, the
distillation weight ``w = E + p``, the layer output (the propagated feature
``x_j = r_j + sum_i w_ij r_i`` of every student, the layer's default), then the distillation loss (L1 on logits, ``1 - cos`` on
representations, and the prior regulariser) and its backward pass. Both share the
same parameters; their outputs, losses and gradients are checked to agree before
anything is timed.

The dense version materialises the pair features ``(B, M, M, 4g)`` exactly as the
graph layer materialises its ``(E, 4g)`` edge features, so both do the same
arithmetic and the ratio measures the cost of the sparse formulation itself.

Run ``python benchmarks/layer.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import math

import torch
import torch.nn.functional as F
from common import (
    format_table,
    markdown_table,
    measured_line,
    peak_tensor_memory,
    time_pair,
    write_results,
)
from torch import Tensor

from dhmd_graph.losses import graph_distillation_loss, prior_regularization
from dhmd_graph.nn import DynamicGraphDistill, modality_graph

BATCH_SIZES = (16, 64, 256, 1024, 4096)
NUM_MODALITIES = (2, 3, 4, 6, 8)


def make_layer(num_modalities: int, logit_channels: int, repr_channels: int,
               hidden_channels: int, seed: int = 0) -> DynamicGraphDistill:
    """A GD-Unit with a reference-like prior: modality 0 (text) teaches every other."""
    torch.manual_seed(seed)
    prior = torch.zeros(num_modalities, num_modalities)  # (M, M) [teacher, student]
    prior[0, 1:] = 1.0
    return DynamicGraphDistill(logit_channels, repr_channels, hidden_channels, prior=prior)


def graph_step(layer: DynamicGraphDistill, logits: Tensor, reprs: Tensor,
               num_modalities: int) -> tuple[Tensor, Tensor, Tensor]:
    """The PyG layer: forward, distillation loss and backward on ``B * M`` nodes.

    Returns:
        (Tensor, Tensor, Tensor): The layer output ``(B*M, F)``, the edge weight
        ``(B*E,)`` and the loss.
    """
    batch_size = logits.size(0) // num_modalities
    graph = modality_graph(num_modalities, batch_size, device=logits.device)
    out, (edge_index, weight) = layer(
        logits, reprs, graph.edge_index, graph.batch, graph.modality, return_edge_weights=True
    )
    prior = layer.prior_weight(edge_index, graph.batch, graph.modality)  # (B*E,)
    loss = (
        graph_distillation_loss(logits, edge_index, weight, graph.batch, "l1",
                                num_graphs=batch_size)
        + graph_distillation_loss(reprs, edge_index, weight, graph.batch, "cosine",
                                  num_graphs=batch_size)
        + prior_regularization(weight - prior, prior, edge_index, graph.batch, batch_size,
                               graph.modality)
    )
    loss.backward()
    return out, weight, loss


def dense_step(layer: DynamicGraphDistill, logits: Tensor, reprs: Tensor,
               num_modalities: int) -> tuple[Tensor, Tensor, Tensor]:
    """The same formulas on dense ``(B, M, M)`` tensors ``[teacher, student]``.

    Uses the parameters of ``layer``. Returns, like :func:`graph_step`, the output
    ``(B*M, F)``, the off-diagonal weights in the graph's edge order ``(B*E,)``
    (teacher-major within each sample) and the loss.
    """
    batch_size = logits.size(0) // num_modalities
    m = num_modalities
    y = logits.view(batch_size, m, -1)  # (B, M, C)
    r = reprs.view(batch_size, m, -1)  # (B, M, F)
    h = torch.cat([layer.lin_logit(y), layer.lin_repr(r)], dim=-1)  # (B, M, 2g)
    # w^T [h_j ; h_i] = w_s^T h_j + w_t^T h_i, broadcast to [b, teacher i, student j].
    w_student, w_teacher = layer.lin_edge.weight.view(2, -1)  # (2g,), (2g,)
    score = (h @ w_teacher).unsqueeze(2) + (h @ w_student).unsqueeze(1)  # (B, M, M)

    self_loop = torch.eye(m, dtype=torch.bool, device=logits.device)  # (M, M)
    score = score.masked_fill(self_loop, float("-inf")) / layer.temperature
    learned = score.view(batch_size, m * m).softmax(dim=-1).view(batch_size, m, m)  # (B, M, M)
    prior_logit = layer.prior.masked_fill(self_loop, float("-inf")) / layer.prior_temperature
    prior = prior_logit.view(-1).softmax(dim=-1).view(m, m)  # (M, M)
    weight = learned + prior  # (B, M, M), zero on the diagonal

    out = r + torch.einsum("bij,bic->bjc", weight, r)  # (B, M, F) x_j = r_j + sum_i w_ij r_i

    distance_logit = (y.unsqueeze(1) - y.detach().unsqueeze(2)).abs().mean(-1)  # (B, M, M)
    distance_repr = 1.0 - F.cosine_similarity(r.unsqueeze(1), r.detach().unsqueeze(2), dim=-1)
    loss = (
        (weight * distance_logit).sum(dim=(1, 2)).mean()
        + (weight * distance_repr).sum(dim=(1, 2)).mean()
        + (learned.mean(dim=0) - prior).pow(2).sum()
    )
    loss.backward()
    edge_weight = weight[:, ~self_loop].reshape(-1)  # (B*E,) teacher-major per sample
    return out.reshape(batch_size * m, -1), edge_weight, loss


def make_inputs(batch_size: int, num_modalities: int, logit_channels: int,
                repr_channels: int, seed: int = 1) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    nodes = batch_size * num_modalities
    logits = torch.randn(nodes, logit_channels, generator=generator).requires_grad_()
    reprs = torch.randn(nodes, repr_channels, generator=generator).requires_grad_()
    return logits, reprs


def _gradients(layer: DynamicGraphDistill, *inputs: Tensor) -> list[Tensor]:
    tensors = [*inputs, *layer.parameters()]
    grads = [torch.zeros_like(t) if t.grad is None else t.grad.clone() for t in tensors]
    for t in tensors:
        t.grad = None
    return grads


def check_agreement(layer: DynamicGraphDistill, logits: Tensor, reprs: Tensor,
                    num_modalities: int, atol: float = 1e-5) -> float:
    """Runs both steps and raises if outputs, weights, loss or gradients differ.

    Returns:
        float: The largest absolute difference found.
    """
    _gradients(layer, logits, reprs)  # clears what earlier steps left
    results_graph = graph_step(layer, logits, reprs, num_modalities)
    grads_graph = _gradients(layer, logits, reprs)
    results_dense = dense_step(layer, logits, reprs, num_modalities)
    grads_dense = _gradients(layer, logits, reprs)
    worst = 0.0
    names = ["output", "edge weight", "loss", "grad logits", "grad reprs"]
    names += [f"grad {name}" for name, _ in layer.named_parameters()]
    pairs = zip(results_graph + tuple(grads_graph), results_dense + tuple(grads_dense),
                strict=True)
    for name, (a, b) in zip(names, pairs, strict=True):
        difference = (a.detach() - b.detach()).abs().max().item()
        scale = max(1.0, b.detach().abs().max().item())
        if not difference <= atol * scale:
            raise AssertionError(
                f"layer benchmark: PyG and dense {name} differ by {difference:.3g} "
                f"(M={num_modalities}, B={logits.size(0) // num_modalities})."
            )
        worst = max(worst, difference)
    return worst


def _loglog_slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log(y) against log(x): 1 means linear cost."""
    lx = [math.log(x) for x in xs]
    ly = [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    covariance = sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True))
    return covariance / sum((a - mx) ** 2 for a in lx)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, few repeats")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=list(BATCH_SIZES))
    parser.add_argument("--modalities", type=int, nargs="+", default=list(NUM_MODALITIES))
    parser.add_argument("--logit-channels", type=int, default=1)
    parser.add_argument("--repr-channels", type=int, default=50)
    parser.add_argument("--hidden-channels", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--output-dir", default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.batch_sizes, args.modalities, args.repeats = [16, 64], [2, 3], 3
    torch.set_num_threads(args.threads)

    rows = []
    for m in args.modalities:
        layer = make_layer(m, args.logit_channels, args.repr_channels, args.hidden_channels)
        for b in args.batch_sizes:
            logits, reprs = make_inputs(b, m, args.logit_channels, args.repr_channels)
            max_difference = check_agreement(layer, logits, reprs, m)

            def run_graph(layer=layer, logits=logits, reprs=reprs, m=m):
                logits.grad = reprs.grad = None
                layer.zero_grad(set_to_none=True)
                graph_step(layer, logits, reprs, m)

            def run_dense(layer=layer, logits=logits, reprs=reprs, m=m):
                logits.grad = reprs.grad = None
                layer.zero_grad(set_to_none=True)
                dense_step(layer, logits, reprs, m)

            graph_time, dense_time, ratio = time_pair(
                run_graph, run_dense, repeats=args.repeats,
                min_run_time=0.005 if args.quick else 0.05,
            )
            edges = b * m * (m - 1)
            rows.append({
                "M": m,
                "B": b,
                "edges": edges,
                "pyg_ms": graph_time.median * 1e3,
                "pyg_iqr_ms": graph_time.iqr * 1e3,
                "dense_ms": dense_time.median * 1e3,
                "dense_iqr_ms": dense_time.iqr * 1e3,
                "ratio": ratio.median,
                "ratio_iqr": ratio.iqr,
                "pyg_ns_per_edge": graph_time.median / edges * 1e9,
                "pyg_peak_mib": peak_tensor_memory(run_graph) / 2**20,
                "dense_peak_mib": peak_tensor_memory(run_dense) / 2**20,
                "max_abs_difference": max_difference,
            })
            print(f"M={m} B={b}: pyg {graph_time.median * 1e3:.3f} ms, dense "
                  f"{dense_time.median * 1e3:.3f} ms, ratio {ratio.median:.2f}", flush=True)

    summary = _summary(rows)
    print()
    print(format_table(rows, ["M", "B", "edges", "pyg_ms", "pyg_iqr_ms", "dense_ms",
                              "dense_iqr_ms", "ratio", "ratio_iqr", "pyg_ns_per_edge",
                              "pyg_peak_mib", "dense_peak_mib"]))
    print()
    for key, value in summary.items():
        print(f"{key}: {value}")
    settings = {k: v for k, v in vars(args).items() if k != "output_dir"}
    path = write_results("layer_quick" if args.quick else "layer", rows, settings=settings,
                         output_dir=args.output_dir, extra={"summary": summary},
                         report=markdown_report)
    print(f"wrote {path}")
    return rows


def markdown_report(rows: list[dict], machine: dict, summary: dict,
                    measured_at: dict | None = None) -> str:
    """The rows as the Markdown table of ``benchmarks/README.md``: step times (median and
    IQR, ms), the per-run ratio and the peak tensor memory of both implementations; the
    lead-in gives the :func:`_summary` (the ratio target and the log-log slopes)."""
    worst = summary.get("worst_ratio_at_B>=256")
    slopes_b = [v for k, v in summary.items() if k.startswith("slope_time_vs_B_at_M=")]
    slopes_e = {k.rsplit("=", 1)[1]: v for k, v in summary.items()
                if k.startswith("slope_time_vs_edges_at_B=")}
    lead = [measured_line(machine, measured_at)]
    if worst is not None:
        met = "met" if summary["target_ratio_met"] else "not met"
        lead.append(f"Worst PyG/dense ratio at B ≥ 256: {worst:.2f} (target 1.25: {met}).")
    if slopes_b:
        lead.append(f"Log-log slope of time against B (B ≥ 256): {min(slopes_b):.2f}–"
                    f"{max(slopes_b):.2f}.")
    if slopes_e:
        lead.append("Against the edges at fixed B: " + ", ".join(
            f"{v:.2f} (B = {b})" for b, v in slopes_e.items()) + ".")
    return "\n".join([" ".join(lead), "", markdown_table([
        ("M", lambda r: r["M"]), ("B", lambda r: r["B"]), ("edges", lambda r: r["edges"]),
        ("PyG ms", lambda r: f"{r['pyg_ms']:.2f}"), ("IQR", lambda r: f"{r['pyg_iqr_ms']:.2f}"),
        ("dense ms", lambda r: f"{r['dense_ms']:.2f}"),
        ("IQR", lambda r: f"{r['dense_iqr_ms']:.2f}"),
        ("PyG/dense", lambda r: f"{r['ratio']:.2f}"), ("IQR", lambda r: f"{r['ratio_iqr']:.2f}"),
        ("PyG peak MiB", lambda r: f"{r['pyg_peak_mib']:.1f}"),
        ("dense peak MiB", lambda r: f"{r['dense_peak_mib']:.1f}"),
    ], rows)])


def _summary(rows: list[dict]) -> dict:
    """Ratio target (PyG within 1.25x of dense at B >= 256) and log-log slopes."""
    large = [row["ratio"] for row in rows if row["B"] >= 256]
    summary: dict = {
        "worst_ratio_at_B>=256": max(large) if large else None,
        "target_ratio_met": max(large) <= 1.25 if large else None,
    }
    for m in sorted({row["M"] for row in rows}):
        sizes = [row for row in rows if row["M"] == m and row["B"] >= 256]
        if len(sizes) >= 2:
            summary[f"slope_time_vs_B_at_M={m}"] = round(
                _loglog_slope([r["B"] for r in sizes], [r["pyg_ms"] for r in sizes]), 3)
    for b in sorted({row["B"] for row in rows}):
        sizes = [row for row in rows if row["B"] == b]
        if len(sizes) >= 2 and b >= 256:
            summary[f"slope_time_vs_edges_at_B={b}"] = round(
                _loglog_slope([r["edges"] for r in sizes], [r["pyg_ms"] for r in sizes]), 3)
    return summary


if __name__ == "__main__":
    main()
