import pytest
import torch

from dhmd_graph.nn.dropout import KEEP_DRAW_BITS, dropout_keep, inverted_dropout


def test_inverted_dropout_identity_outside_training():
    x = torch.ones(10)
    assert inverted_dropout(x, 0.3, training=False) is x
    assert inverted_dropout(x, 0.0, training=True) is x


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_dropout_keep_rate_and_scale(p):
    torch.manual_seed(0)
    keep = dropout_keep(torch.empty(400_000), p)
    rounded = round(p * 2**KEEP_DRAW_BITS) / 2**KEEP_DRAW_BITS
    assert abs(rounded - p) <= 2 ** -(KEEP_DRAW_BITS + 1)
    torch.testing.assert_close(keep.unique(), torch.tensor([0.0, 1 / (1 - rounded)]))
    assert abs(float((keep == 0).float().mean()) - p) < 0.004  # 5 sigma at 400k draws
    assert abs(float(keep.mean()) - 1.0) < 0.01  # the mask keeps the expectation


def test_dropout_keep_draws_are_independent():
    # Neighbouring elements come from the same 64-bit word; their keeps must not be tied.
    torch.manual_seed(1)
    keep = (dropout_keep(torch.empty(400_000), 0.5) > 0).float().view(-1, 4)
    both = (keep[:, :-1] * keep[:, 1:]).mean(dim=0)  # P(keep i and keep i+1) per position
    torch.testing.assert_close(both, torch.full((3,), 0.25), atol=0.006, rtol=0)
    top = keep[:, 3].mean()  # the word's top part (its sign bit is never drawn)
    assert abs(float(top) - 0.5) < 0.006


def test_dropout_keep_rate_per_row():
    torch.manual_seed(2)
    rates = torch.tensor([0.0, 0.25, 0.75]).view(3, 1, 1)
    keep = dropout_keep(torch.empty(3, 200, 500), rates)
    dropped = (keep == 0).float().mean(dim=(1, 2))
    torch.testing.assert_close(dropped, rates.view(3), atol=0.01, rtol=0)
    torch.testing.assert_close(keep[2].max(), torch.tensor(4.0))


def test_inverted_dropout_gradient_is_the_mask():
    torch.manual_seed(3)
    x = torch.randn(50, 40, requires_grad=True)
    out = inverted_dropout(x, 0.5, training=True)
    out.sum().backward()
    torch.testing.assert_close(x.grad, (out != 0).float() * 2.0)


def test_dropout_keep_dtype_and_shape():
    x = torch.empty(3, 5, 7, dtype=torch.float64)
    keep = dropout_keep(x, 0.2)
    assert keep.shape == x.shape and keep.dtype == torch.float64
