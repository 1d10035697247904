"""The DMD reference mode (``preset(..., reference="dmd")``) against the DMD reference
code (``mdswyz/DMD@516d4e1``), re-derived here by hand: its parameter count, read off
its constructor, and one batch through a plain re-implementation of its forward pass and
objective that shares only the weights with our model."""

import pytest

from dhmd_graph.config import preset
from dhmd_graph.model import DHMD

PRESETS = {  # width, input dims, kernels, padded lengths; all (text, audio, vision)
    ("mosi", True): (50, (768, 5, 20), (5, 5, 5), (50, 50, 50)),
    ("mosi", False): (50, (768, 5, 20), (5, 5, 5), (50, 375, 500)),
    ("mosei", True): (30, (768, 74, 35), (5, 1, 3), (50, 50, 50)),
    ("mosei", False): (30, (768, 74, 35), (5, 1, 3), (50, 500, 500)),
}


def linear(n_in: int, n_out: int, bias: bool = True) -> int:
    return n_in * n_out + (n_out if bias else 0)


def transformer(c: int, layers: int = 4) -> int:
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
        "self_attentions_c_*": 3 * transformer(d),
        "proj1_c, proj2_c, out_layer_c": 2 * linear(3 * d, 3 * d) + linear(3 * d, 1),
        "trans_*_with_* (6)": 6 * transformer(d),
        "trans_*_mem (layers max(4, 3))": 3 * transformer(2 * d),
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
                ("mosei", True): 1_667_600, ("mosei", False): 4_151_600}  # as in the README
    assert ours == expected[case]
