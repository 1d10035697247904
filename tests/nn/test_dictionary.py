import pytest
import torch

from dhmd_graph.nn.dictionary import CrossModalDictionary, sparsemax


def test_sparsemax_values():
    torch.testing.assert_close(sparsemax(torch.tensor([1.0, 0.0])), torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(sparsemax(torch.tensor([0.5, 0.4])), torch.tensor([0.55, 0.45]))
    torch.testing.assert_close(sparsemax(torch.tensor([2.0, 2.0, -5.0])),
                               torch.tensor([0.5, 0.5, 0.0]))
    x = torch.randn(5, 7, 9) * 3
    p = sparsemax(x)
    assert (p >= 0).all() and (p == 0).any()
    torch.testing.assert_close(p.sum(-1), torch.ones(5, 7))


def test_sparsemax_gradient():
    x = torch.randn(3, 5, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(sparsemax, (x,))


def _dictionary(**kwargs) -> CrossModalDictionary:
    torch.manual_seed(0)
    return CrossModalDictionary(6, 5, **kwargs)


@pytest.mark.parametrize(("activation", "pooling"),
                         [("softmax", "mean"), ("sparsemax", "max"), ("softmax", "max")])
def test_activations_are_distributions_over_atoms(activation, pooling):
    dictionary = _dictionary(activation=activation, pooling=pooling)
    tokens = [torch.randn(2, 4, 6), torch.randn(2, 7, 6)]
    lengths = [torch.tensor([4, 1]), torch.tensor([3, 7])]
    out = dictionary(tokens, lengths)
    assert out.activation.shape == out.log_activation.shape == (2, 2, 5)
    assert (out.activation >= 0).all()
    torch.testing.assert_close(out.activation.sum(-1), torch.ones(2, 2))
    torch.testing.assert_close(out.feature, out.activation @ dictionary.atoms)
    if pooling == "mean":  # Jensen: mean of logs <= log of mean
        assert (out.token_log_activation <= out.log_activation + 1e-6).all()
    # Modality 0 of sample 1 has one token: its activation is that token's.
    alone = dictionary.token_activation(tokens[0][1:, :1])[0, 0]
    torch.testing.assert_close(out.activation[1, 0], alone)


def test_dictionary_ignores_padding():
    dictionary = _dictionary()
    tokens = [torch.randn(2, 4, 6), torch.randn(2, 3, 6)]
    lengths = [torch.tensor([2, 4]), torch.tensor([3, 1])]
    out = dictionary(tokens, lengths)
    changed = [t.clone() for t in tokens]
    changed[0][0, 2:] = 50.0
    changed[1][1, 1:] = -50.0
    again = dictionary(changed, lengths)
    for a, b in zip(out, again, strict=True):
        torch.testing.assert_close(a, b)


def test_mean_pooling_is_the_mean_of_token_activations():
    dictionary = _dictionary()
    tokens = torch.randn(1, 3, 6)
    out = dictionary([tokens, tokens[:, :1]], [torch.tensor([3]), torch.tensor([1])])
    probabilities = dictionary.token_activation(tokens)[0]
    torch.testing.assert_close(out.activation[0, 0], probabilities.mean(0))
    torch.testing.assert_close(out.token_log_activation[0, 0],
                               torch.log(probabilities + 1e-6).mean(0))


def test_lower_temperature_sharpens():
    tokens, lengths = [torch.randn(4, 3, 6)], [torch.tensor([1, 1, 1, 1])]
    entropy = []
    for temperature in (2.0, 0.1):
        dictionary = _dictionary(temperature=temperature)
        a = dictionary(tokens, lengths).activation
        entropy.append(-(a * a.log()).sum(-1).mean())
    assert entropy[1] < entropy[0]


def test_gradients_reach_atoms_and_query():
    dictionary = _dictionary()
    out = dictionary([torch.randn(2, 3, 6)], [torch.tensor([3, 2])])
    (out.feature.sum() + out.log_activation[..., 0].sum()).backward()
    for name, parameter in dictionary.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_errors_and_repr():
    with pytest.raises(ValueError, match="atoms"):
        CrossModalDictionary(4, 0)
    with pytest.raises(ValueError, match="activation"):
        CrossModalDictionary(4, 3, activation="relu")
    with pytest.raises(ValueError, match="pooling"):
        CrossModalDictionary(4, 3, pooling="sum")
    assert repr(_dictionary()) == ("CrossModalDictionary(6, atoms=5, activation='softmax', "
                                   "pooling='mean')")
