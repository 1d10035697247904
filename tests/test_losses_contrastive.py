"""The contrastive loss on the modality-shared dictionary's reconstructions."""

import math

import numpy as np
import pytest
import torch

from dhmd_graph.losses import dictionary_contrastive_loss

# Two samples, two modalities, unit vectors in the plane: every anchor is 0.6 (cosine) from
# its positive and 0.8 from its one negative.
HAND = torch.tensor([[[1.0, 0.0], [0.6, 0.8]],  # sample 0: modality 0, modality 1
                     [[0.0, 1.0], [0.8, 0.6]]])  # sample 1


def test_hand_computed_two_by_two():
    # Each of the 4 anchors: -log(e^0.6 / (e^0.6 + e^0.8)) = log(1 + e^0.2) at tau = 1.
    loss = dictionary_contrastive_loss(HAND, temperature=1.0)
    assert loss.shape == ()
    assert math.isclose(loss.item(), math.log(1 + math.exp(0.2)), rel_tol=1e-6)
    # At tau = 0.5 the gap doubles: log(1 + e^0.4). Scale does not matter (cosine).
    loss = dictionary_contrastive_loss(3.0 * HAND, temperature=0.5)
    assert math.isclose(loss.item(), math.log(1 + math.exp(0.4)), rel_tol=1e-6)


def test_hand_computed_with_an_absent_modality():
    # Sample 1 lacks modality 1. Anchor (0, m0): its only candidate in m1 is its positive,
    # so its term is 0. Anchor (0, m1): positive (0, m0) at 0.6, negative (1, m0) at 0.8.
    # Sample 1's modality 0 has no positive: it is no anchor (but still a negative).
    present = torch.tensor([[True, True], [True, False]])
    loss = dictionary_contrastive_loss(HAND, present, temperature=1.0)
    assert math.isclose(loss.item(), (0.0 + math.log(1 + math.exp(0.2))) / 2, rel_tol=1e-6)


def _numpy_reference(x: np.ndarray, present: np.ndarray, tau: float) -> float:
    """The documented formula with explicit loops."""
    z = x / np.linalg.norm(x, axis=-1, keepdims=True)
    batch, modalities, _ = x.shape
    terms = []
    for b in range(batch):
        for m in range(modalities):
            for n in range(modalities):
                if m == n or not (present[b, m] and present[b, n]):
                    continue
                candidates = [c for c in range(batch) if present[c, n]]
                scores = np.array([z[b, m] @ z[c, n] / tau for c in candidates])
                terms.append(-(z[b, m] @ z[b, n] / tau) + np.log(np.exp(scores).sum()))
    return float(np.mean(terms)) if terms else 0.0


@pytest.mark.parametrize("num_modalities", [2, 3, 5])
def test_matches_a_loop_reference(num_modalities):
    rng = np.random.default_rng(num_modalities)
    x = rng.standard_normal((4, num_modalities, 3))
    present = rng.random((4, num_modalities)) > 0.3
    present[0] = True
    loss = dictionary_contrastive_loss(torch.from_numpy(x), torch.from_numpy(present),
                                       temperature=0.3)
    assert math.isclose(loss.item(), _numpy_reference(x, present, 0.3), rel_tol=1e-9)


def test_decreases_as_same_sample_reconstructions_align():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, 6, generator=generator)
    common = torch.randn(8, 1, 6, generator=generator)  # one direction per sample
    losses = [dictionary_contrastive_loss((1 - a) * x + a * common).item()
              for a in (0.0, 0.3, 0.6, 0.9, 1.0)]
    assert all(later < earlier for earlier, later in zip(losses, losses[1:], strict=False))
    # Collapse across samples scores a uniform guess, log(B) per term: well above samples
    # whose modalities agree and differ from the other samples.
    collapsed = dictionary_contrastive_loss(common[:1].expand(8, 3, 6).contiguous())
    assert math.isclose(collapsed.item(), math.log(8), rel_tol=1e-6)
    assert collapsed.item() > losses[-1] + 1.0


def test_gradients_and_degenerate_batches():
    x = torch.randn(4, 3, 5, dtype=torch.double, requires_grad=True)
    present = torch.tensor([[True, True, False], [True, False, False],
                            [True, True, False], [False, True, False]])  # modality 2 nowhere
    loss = dictionary_contrastive_loss(x, present)
    (grad,) = torch.autograd.grad(loss, x)
    assert torch.isfinite(grad).all()
    assert grad[~present].abs().max() == 0
    assert grad[0, 0].abs().sum() > 0
    # No pair anywhere: zero, and still differentiable.
    lonely = torch.tensor([[True, False, False], [False, True, False], [True, False, False],
                           [False, False, True]])
    zero = dictionary_contrastive_loss(x, lonely)
    assert zero.item() == 0.0 and zero.requires_grad
    with pytest.raises(ValueError, match="dictionary_contrastive_loss: temperature"):
        dictionary_contrastive_loss(x, temperature=0.0)
