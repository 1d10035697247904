"""The DMD reference mode (``preset(..., reference="dmd")``) against the DMD reference
code (``mdswyz/DMD@516d4e1``), re-derived here by hand: its parameter count, read off
its constructor, and one batch through a plain re-implementation of its forward pass and
objective that shares only the weights with our model."""

import math

import pytest
import torch
import torch.nn.functional as F

from dhmd_graph.config import apply_overrides
from dhmd_graph.data.batch import MultimodalBatch
from dhmd_graph.data.errors import DatasetError
from dhmd_graph.model import DHMD, dhmd_objective
from dhmd_graph.presets import preset

PRESETS = {  # width, input dims, kernels, padded lengths; all (text, audio, vision)
    ("mosi", True): (50, (768, 5, 20), (5, 5, 5), (50, 50, 50)),
    ("mosi", False): (50, (768, 5, 20), (5, 5, 5), (50, 375, 500)),
    ("mosei", True): (30, (768, 74, 35), (5, 1, 3), (50, 50, 50)),
    ("mosei", False): (30, (768, 74, 35), (5, 1, 3), (50, 500, 500)),
}


def linear(n_in: int, n_out: int, bias: bool = True) -> int:
    return n_in * n_out + (n_out if bias else 0)


def transformer_parameters(c: int, layers: int = 4) -> int:
    """``TransformerEncoder(c, layers)``: per layer the joint in-projection (3c x c and
    bias), out-projection, fc1 (c -> 4c), fc2 and two LayerNorms; one final LayerNorm."""
    layer = linear(c, 3 * c) + linear(c, c) + linear(c, 4 * c) + linear(4 * c, c) + 2 * 2 * c
    return layers * layer + 2 * c


def reference_parameters(d: int, dims, kernels, lengths) -> dict[str, int]:
    """The parameters the reference builds (``trains/singleTask/model/dmd.py:11-124`` and
    ``run.py:138-160``), module by module, except the BERT text encoder (we take its
    features as input)."""
    steps = [t - k + 1 for t, k in zip(lengths, kernels, strict=True)]  # T' per modality
    return {
        "proj_l/a/v (Conv1d, no bias)": sum(n * d * k for n, k in zip(dims, kernels, strict=True)),
        "encoder_s_*, encoder_c": 3 * d * d + d * d,
        "decoder_*": 3 * 2 * d * d,
        "proj_cosine_* (never used)": sum(linear(d * t, d) for t in steps),
        "align_c_*": sum(linear(d * t, d) for t in steps),
        "self_attentions_c_*": 3 * transformer_parameters(d),
        "proj1_c, proj2_c, out_layer_c": 2 * linear(3 * d, 3 * d) + linear(3 * d, 1),
        "trans_*_with_* (6)": 6 * transformer_parameters(d),
        "trans_*_mem (layers max(4, 3))": 3 * transformer_parameters(2 * d),
        "proj1/proj2/out_layer_*_low": sum(linear(d * t, d) + linear(d, d * t) + linear(d * t, 1)
                                           for t in steps),
        "proj1/proj2/out_layer_*_high": 3 * (2 * linear(2 * d, 2 * d) + linear(2 * d, 1)),
        "weight_l/v/a, weight_c": 3 * linear(2 * d, 2 * d) + linear(3 * d, 3 * d),
        "proj1, proj2, out_layer": 2 * linear(9 * d, 9 * d) + linear(9 * d, 1),
        "homogeneous GD kernel": linear(1, 64) + linear(d, 64) + linear(4 * 64, 1),
        "heterogeneous GD kernel": linear(1, 32) + linear(2 * d, 32) + linear(4 * 32, 1),
    }


UNUSED = ("proj_cosine_* (never used)",)
"""Built but never used in a loss or an output; plus the edge scorers' biases (one per
GD kernel), which cancel in the softmax over each sample's edges."""


@pytest.mark.parametrize("case", sorted(PRESETS))
def test_parameter_count_is_the_references_minus_unused_modules(case):
    name, aligned = case
    reference = reference_parameters(*PRESETS[case])
    used = sum(v for k, v in reference.items() if k not in UNUSED) - 2  # two edge biases
    ours = sum(p.numel() for p in DHMD(preset(name, aligned, reference="dmd")).parameters())
    assert ours == used
    expected = {("mosi", True): 4_405_580, ("mosi", False): 10_295_580,
                ("mosei", True): 1_667_600, ("mosei", False): 4_151_600}  # as in docs/guide/dmd.md
    assert ours == expected[case]


# One batch through the reference, re-derived ###########################################
#
# A plain re-implementation of the reference's forward pass (trains/singleTask/model/
# dmd.py, trains/subNets/transformers_encoder/) and objective (trains/singleTask/DMD.py,
# distillnets/, misc.py, HingeLoss.py), in float64, on channel-first tensors as the
# reference keeps them, sharing only the parameter tensors with our model. Modalities are
# in our order (text, audio, vision); the reference's fusion concatenates l, v, a, which
# only permutes the blocks of the fusion weights. Its orthogonality term crashes on
# current PyTorch, so that one term is computed per time step, as ours is.

SIZES = [
    "width=8", "num_heads=2", "encoder.num_layers=2", "encoder.memory_layers=2",
    "homogeneous_graph.hidden_channels=4", "heterogeneous_graph.hidden_channels=3",
    "modalities.text.input_dim=6", "modalities.text.kernel_size=3",
    "modalities.text.sequence_length=7",
    "modalities.audio.input_dim=3", "modalities.audio.kernel_size=1",
    "modalities.audio.sequence_length=9",
    "modalities.vision.input_dim=4", "modalities.vision.kernel_size=2",
    "modalities.vision.sequence_length=8",
]
"""A tiny MOSI-aligned ``dmd`` preset whose modalities have 5, 9 and 7 steps after the
projection, so that the shifted causal masks differ from ours."""

LENGTHS = {"text": [6, 5, 3, 6], "audio": [9, 9, 9, 9], "vision": [8, 6, 8, 7]}
LABELS = [1.0, 1.0, -0.5, 2.0]  # two equal labels: the margin loss has triplets


def tiny_dmd():
    return apply_overrides(preset("mosi", True, reference="dmd"), SIZES)


def reference_batch(config):
    """Random features, zero after each true length, padded to the longest in the batch
    (as our collate does: shorter than the configured sequence lengths)."""
    generator = torch.Generator().manual_seed(0)
    features = {}
    for modality in config.modalities:
        lengths = torch.tensor(LENGTHS[modality.name])
        steps = int(lengths.max())
        x = torch.randn(4, steps, modality.input_dim, generator=generator, dtype=torch.double)
        features[modality.name] = x * (torch.arange(steps) < lengths[:, None]).unsqueeze(-1)
    lengths = {name: torch.tensor(value) for name, value in LENGTHS.items()}
    labels = torch.tensor(LABELS, dtype=torch.double)
    return MultimodalBatch(features, lengths, labels, [str(i) for i in range(4)])


def fairseq_positions(x):
    """``(B, T, C)``: position t + 1 of every step whose first channel is non-zero, else
    position 0 (an all-zero row); sin in channels k < C/2, cos in the rest."""
    batch, steps, channels = x.shape
    half = channels // 2
    frequency = torch.exp(torch.arange(half, dtype=x.dtype) * -(math.log(10000.0) / (half - 1)))
    position = torch.arange(1, steps + 1, dtype=x.dtype).expand(batch, steps)
    real = (x[..., 0] != 0).to(x.dtype)  # (B, T)
    angle = (position * real).unsqueeze(-1) * frequency  # (B, T, h)
    return torch.cat([angle.sin(), angle.cos()], dim=-1) * real.unsqueeze(-1)


def layer_norm(x, weight, bias):
    mean = x.mean(-1, keepdim=True)
    variance = (x - mean).pow(2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(variance + 1e-5) * weight + bias


def transformer(stacked, g, x_in, source_in=None):
    """The reference's TransformerEncoder (member ``g`` of our stacked weights) on
    ``(B, T, C)``: scaled input plus fairseq positions, pre-LayerNorm layers with the
    future mask triu(1 + |S - T|), the layer's first LayerNorm also on the key/value
    input, and a final LayerNorm."""
    channels, heads = x_in.shape[-1], stacked.num_heads
    x = math.sqrt(channels) * x_in + fairseq_positions(x_in)
    keys = x if source_in is None else math.sqrt(channels) * source_in + fairseq_positions(
        source_in)
    steps, key_steps = x.shape[1], keys.shape[1]
    future = torch.ones(steps, key_steps).triu(1 + abs(key_steps - steps)).bool()
    split = lambda t: t.view(t.shape[0], t.shape[1], heads, -1).transpose(1, 2)  # noqa: E731
    for layer in stacked.layers:
        w, b = layer.in_projection.weight[g], layer.in_projection.bias[g]
        ln0 = (layer.norm_attention.weight[g], layer.norm_attention.bias[g])
        h = layer_norm(x, *ln0)
        kv = h if source_in is None else layer_norm(keys, *ln0)
        q = split(h @ w[:channels].t() + b[:channels]) * (channels // heads) ** -0.5
        k = split(kv @ w[channels:2 * channels].t() + b[channels:2 * channels])
        v = split(kv @ w[2 * channels:].t() + b[2 * channels:])
        scores = (q @ k.transpose(-1, -2)).masked_fill(future, float("-inf"))
        attended = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(x.shape)
        x = x + attended @ layer.out_projection.weight[g].t() + layer.out_projection.bias[g]
        h = layer_norm(x, layer.norm_feedforward.weight[g], layer.norm_feedforward.bias[g])
        h = torch.relu(h @ layer.feedforward_in.weight[g].t() + layer.feedforward_in.bias[g])
        x = x + h @ layer.feedforward_out.weight[g].t() + layer.feedforward_out.bias[g]
    return layer_norm(x, stacked.norm.weight[g], stacked.norm.bias[g])


def residual(head, x):
    """proj2(relu(proj1(x))) + x, then out_layer: (representation, logit)."""
    h = torch.relu(x @ head.hidden.weight.t() + head.hidden.bias)
    h = h @ head.back.weight.t() + head.back.bias + x
    return h, h @ head.out.weight.t() + head.out.bias


def conv1x1(weight, x):
    """A bias-free Conv1d(kernel 1) on channel-first ``(B, C, T)``."""
    return torch.einsum("oc,bct->bot", weight, x)


def cosine(a, b):
    """As ATen's cosine_embedding_loss computes it: 0 between all-zero steps (the padded
    steps of s and c), where a plain quotient would be 0 / 0."""
    return (a * b).sum(-1) / torch.sqrt((a.pow(2).sum(-1) + 1e-12) * (b.pow(2).sum(-1) + 1e-12))


def graph_distillation(unit, logits, reprs, prior, repr_term):
    """The reference's DistillationKernel: node embedding [W_logit y ; W_repr r], edge
    score W_edge [z_student ; z_teacher] for every student j and teacher i != j, softmax
    (over the sample's edges) of score / 8, prior softmax(logit / 0.25), w = E + p; the
    regulariser, the weighted L1 on logits and (heterogeneous) the representation term
    mean_b(w) * mean_b max(0, cos). Returns (terms, {(teacher, student): w (B,)})."""
    z = torch.cat([logits.unsqueeze(-1) @ unit.lin_logit.weight.t() + unit.lin_logit.bias,
                   reprs @ unit.lin_repr.weight.t() + unit.lin_repr.bias], dim=-1)  # (B, M, 2g)
    edges = [(i, j) for j in range(3) for i in range(3) if i != j]  # (teacher, student)
    score = torch.stack([torch.cat([z[:, j], z[:, i]], -1) @ unit.lin_edge.weight[0]
                         for i, j in edges], dim=1)  # (B, 6)
    learned = torch.softmax(score / 8, dim=1)
    p = torch.softmax(torch.tensor([prior[i][j] for i, j in edges], dtype=score.dtype) / 0.25, 0)
    w = learned + p
    terms = {
        "reg": (learned.mean(0) - p).pow(2).sum(),
        "logit": sum((w[:, k] * (logits[:, j] - logits[:, i].detach()).abs()).mean()
                     for k, (i, j) in enumerate(edges)),
    }
    if repr_term:
        terms["repr"] = sum(w[:, k].mean() * cosine(reprs[:, j], reprs[:, i].detach())
                            .clamp_min(0).mean() for k, (i, j) in enumerate(edges))
    return terms, {edge: w[:, k] for k, edge in enumerate(edges)}


def hinge(vectors, labels, scale=0.15):
    """HingeLoss: per anchor with a positive and a negative, the mean over its (positive,
    negative) pairs of max(0, scale |y_i - y_k| - cos_ij + cos_ik); then over anchors."""
    losses = []
    for i in range(len(labels)):
        positive = [j for j in range(len(labels)) if j != i and labels[j] == labels[i]]
        negative = [k for k in range(len(labels)) if labels[k] != labels[i]]
        if positive and negative:
            losses.append(torch.stack([
                (scale * (labels[i] - labels[k]).abs() - cosine(vectors[i], vectors[j])
                 + cosine(vectors[i], vectors[k])).clamp_min(0)
                for j in positive for k in negative]).mean())
    return torch.stack(losses).mean()


def reference_forward(model, batch):
    """The reference's forward pass and combined loss, from our model's weights."""
    config = model.config
    labels = batch.labels
    proj, s, c, recon, s_r = [], [], [], [], []
    for m, modality in enumerate(config.modalities):
        x = batch.features[modality.name]  # the data as the reference's loader gives it:
        x = F.pad(x, (0, 0, 0, modality.sequence_length - x.shape[1]))  # its padded length
        p = F.conv1d(x.transpose(1, 2), model.projections[m].conv.weight)  # (B, d, T')
        s_m = conv1x1(model.decoupling.private[m].weight, p)
        c_m = conv1x1(model.decoupling.shared.weight, p)
        x_hat = conv1x1(model.decoupling.decoders[m].weight, torch.cat([s_m, c_m], dim=1))
        proj.append(p), s.append(s_m), c.append(c_m), recon.append(x_hat)
        s_r.append(conv1x1(model.decoupling.private[m].weight, x_hat))
    out = {}
    # Homogeneous: the flatten heads (time-major), the margin embeddings (channel-major).
    homogeneous = [residual_flat(model.spaces["homogeneous"].heads[m], c[m]) for m in range(3)]
    out["r"] = torch.stack([r for r, _ in homogeneous], 1)  # (B, M, d)
    out["hom"] = torch.cat([y for _, y in homogeneous], -1)  # (B, M)
    margin_vectors = torch.stack([c[m].reshape(len(labels), -1) @ model.margin_embeddings[m]
                                  .weight.t() + model.margin_embeddings[m].bias
                                  for m in range(3)], 1)  # (B, M, d)
    last = [transformer(model.shared_encoders, m, c[m].transpose(1, 2))[:, -1] for m in range(3)]
    c_fusion = torch.cat(last, -1)  # (B, M d)
    out["shared"] = residual(model.shared_head, c_fusion)[1].squeeze(-1)
    # Heterogeneous: cross-modal transformers, memory encoders, last step.
    crossed = {pair: transformer(model.cross_modal, k, s[pair[0]].transpose(1, 2),
                                 s[pair[1]].transpose(1, 2))
               for k, pair in enumerate(model.pairs)}
    g = [transformer(model.memory_encoders, t,
                     torch.cat([crossed[(t, n)] for n in range(3) if n != t], -1))[:, -1]
         for t in range(3)]  # (B, 2d) each
    heterogeneous = [residual(model.spaces["heterogeneous"].heads[m], g[m]) for m in range(3)]
    out["z"] = torch.stack([z for z, _ in heterogeneous], 1)
    out["het"] = torch.cat([y for _, y in heterogeneous], -1)
    blocks = model.spaces["heterogeneous"].fusion  # DMD's sigma(W g_m)
    fusion = [torch.sigmoid(g[m] @ blocks[m].weight.t() + blocks[m].bias) for m in range(3)]
    fusion.append(torch.sigmoid(c_fusion @ model.fusion_shared.weight.t()
                                + model.fusion_shared.bias))
    out["prediction"] = residual(model.fusion_head, torch.cat(fusion, -1))[1].squeeze(-1)

    mse = lambda a, b: (a - b).pow(2).mean()  # noqa: E731
    terms = {
        "task": sum((y - labels).abs().mean() for y in
                    [out["prediction"], out["shared"], *out["hom"].T, *out["het"].T]),
        "reconstruction": sum(mse(recon[m], proj[m]) for m in range(3)),
        "cycle": sum(mse(s[m], s_r[m]) for m in range(3)),
        "orthogonality": sum(cosine(s[m].transpose(1, 2), c[m].transpose(1, 2)).clamp_min(0)
                             .mean() for m in range(3)),
        "margin": hinge(margin_vectors.flatten(0, 1), labels.repeat_interleave(3)),
    }
    weights = {}
    for space, logits, reprs, repr_term in (("homogeneous", out["hom"], out["r"], False),
                                            ("heterogeneous", out["het"], out["z"], True)):
        gd, weights[space] = graph_distillation(
            model.spaces[space].graph, logits, reprs, config.prior_matrix(space),
            repr_term)
        terms |= {f"gd/{space}/{key}": value for key, value in gd.items()}
    terms["loss"] = (
        terms["task"]
        + 0.05 * (terms["gd/homogeneous/logit"] + 10 * terms["gd/homogeneous/reg"])
        + 0.05 * (terms["gd/heterogeneous/logit"] + 10 * terms["gd/heterogeneous/repr"]
                  + 10 * terms["gd/heterogeneous/reg"])
        + 0.1 * (terms["cycle"] + terms["reconstruction"])
        + 0.01 * (terms["margin"] + terms["orthogonality"]))
    return out, terms, weights


def residual_flat(head, c):
    """The homogeneous head on c (B, d, T'): flatten time-major, ReLU(proj1) is the
    representation, proj2(.) + flat, out_layer."""
    flat = c.transpose(1, 2).reshape(c.shape[0], -1)  # (B, T' d), time-major
    r = torch.relu(flat @ head.hidden.weight.t() + head.hidden.bias)
    h = r @ head.back.weight.t() + head.back.bias + flat
    return r, h @ head.out.weight.t() + head.out.bias


def test_dmd_preset_reproduces_the_reference_on_a_batch():
    torch.manual_seed(0)
    config = tiny_dmd()
    model = DHMD(config).double().eval()
    with torch.no_grad():  # distinct LayerNorm weights, so a mixed-up one would show
        for name, parameter in model.named_parameters():
            if "norm" in name:
                parameter.add_(0.3 * torch.randn_like(parameter))
    batch = reference_batch(config)
    output = model(batch)
    terms = dhmd_objective(output, batch, config)
    expected, expected_terms, expected_weights = reference_forward(model, batch)

    found = {"prediction": output.prediction, "hom": output.homogeneous.logits,
             "het": output.heterogeneous.logits, "shared": output.shared_logit,
             "r": output.homogeneous.representation, "z": output.heterogeneous.representation}
    for key, value in expected.items():
        torch.testing.assert_close(found[key], value, msg=key)
    assert set(terms) == set(expected_terms)
    for key, value in expected_terms.items():
        torch.testing.assert_close(terms[key], value, msg=key)
    for space in ("homogeneous", "heterogeneous"):  # every edge weight w = E + p
        edges = output.spaces[space].edges
        for (teacher, student), weight in zip(edges.edge_index.t().tolist(), edges.weight,
                                              strict=True):
            sample, i, j = teacher // 3, teacher % 3, student % 3
            torch.testing.assert_close(weight, expected_weights[space][(i, j)][sample])
    # The same gradient of every parameter: one training step is the reference's.
    parameters = list(model.parameters())
    ours = torch.autograd.grad(terms["loss"], parameters)
    theirs = torch.autograd.grad(expected_terms["loss"], parameters)
    for (name, _), a, b in zip(model.named_parameters(), ours, theirs, strict=True):
        torch.testing.assert_close(a, b, msg=name)


def test_our_defaults_differ_from_the_reference_on_the_same_batch():
    # With our defaults (same weights where they exist) the prediction moves: the
    # reference comparison above is not vacuous.
    torch.manual_seed(0)
    config = tiny_dmd()
    model = DHMD(config).double().eval()
    batch = reference_batch(config)
    expected = reference_forward(model, batch)[0]["prediction"]
    for override in ("encoder.positional_encoding=interleaved", "encoder.pooling=mean",
                     "encoder.causal_alignment=relative", "modalities.text.length_mask=true"):
        changed = DHMD(apply_overrides(config, [override])).double().eval()
        changed.load_state_dict(model.state_dict())
        assert not torch.allclose(changed(batch).prediction, expected), override


def test_without_length_masks_every_padded_step_is_data():
    # length_mask=false: the model computes what it computes with every sample's length set
    # to the padded one (the reference reads no lengths); with the masks it differs.
    torch.manual_seed(0)
    config = tiny_dmd()
    model = DHMD(config).double().eval()
    batch = reference_batch(config)
    padded = {m.name: m.sequence_length for m in config.modalities}
    full = MultimodalBatch(
        {name: F.pad(x, (0, 0, 0, padded[name] - x.shape[1])) for name, x in batch.features.items()},
        {name: torch.full((4,), padded[name]) for name in batch.lengths}, batch.labels, batch.ids)
    masked = DHMD(apply_overrides(config, [f"modalities.{m.name}.length_mask=true"
                                           for m in config.modalities])).double().eval()
    masked.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(model(batch).prediction, masked(full).prediction)
        assert not torch.allclose(masked(batch).prediction, model(batch).prediction)
        # The batch is zero-padded to the configured sequence lengths: pre-padded data
        # gives the same result.
        torch.testing.assert_close(model(full).prediction, model(batch).prediction)


def test_a_batch_longer_than_the_sequence_length_is_an_error():
    config = tiny_dmd()
    batch = reference_batch(config)
    batch.features["audio"] = F.pad(batch.features["audio"], (0, 0, 0, 2))  # 11 > 9 steps
    with pytest.raises(DatasetError, match=r"field 'audio'.*sequence_length=9.*found 11 steps"):
        DHMD(config).double()(batch)


def test_reference_dropouts_reach_their_modules():
    # dmd.py:126-154: text_dropout on the text input only; the attention dropout of a
    # transformer is that of the modality its keys come from (l: attn_dropout, a:
    # attn_dropout_a, v: attn_dropout_v); the memory encoders use attn_dropout.
    config = preset("mosi", True, reference="dmd")
    model = DHMD(config)
    assert [p.dropout for p in model.projections] == [0.5, 0.0, 0.0]
    rate = {0: 0.3, 1: 0.2, 2: 0.0}  # text, audio, vision
    assert model.shared_encoders.attention_dropout == [0.3, 0.2, 0.0]
    assert model.cross_modal.attention_dropout == [rate[source] for _, source in model.pairs]
    assert model.memory_encoders.attention_dropout == [0.3] * 3
    assert model.cross_modal.embed_dropout == 0.2
    assert all(head.dropout.p == 0.5 for head in model.spaces["homogeneous"].heads)
    ours = DHMD(preset("mosi"))
    assert [p.dropout for p in ours.projections] == [0.0] * 3
    assert ours.cross_modal.attention_dropout == [0.1] * 6
