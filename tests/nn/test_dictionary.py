import pytest
import torch

from dhmd_graph.nn.dictionary import (
    ModalitySharedDictionary,
    SharedDictionaryOutput,
    sparsemax,
)


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


# The modality-shared dictionary after the GD-Unit ---------------------------------------


def _shared(**kwargs) -> ModalitySharedDictionary:
    torch.manual_seed(0)
    return ModalitySharedDictionary(6, 5, **kwargs).double()


def _dense_shared(dictionary, x):
    """The documented formula, written out: a = sigma(LN(W_q x) D^T / (sqrt(C) tau))."""
    q = x @ dictionary.query.weight.T + dictionary.query.bias  # (B, M, C)
    q = (q - q.mean(-1, keepdim=True)) / torch.sqrt(q.var(-1, unbiased=False, keepdim=True)
                                                     + dictionary.norm.eps)
    q = q * dictionary.norm.weight + dictionary.norm.bias
    scores = q @ dictionary.atoms.T / (dictionary.atom_channels ** 0.5 * dictionary.temperature)
    activation = sparsemax(scores) if dictionary.activation == "sparsemax" else scores.softmax(-1)
    combination = activation @ dictionary.atoms
    if dictionary.output is not None:
        combination = combination @ dictionary.output.weight.T + dictionary.output.bias
    return activation, combination


@pytest.mark.parametrize("num_modalities", [2, 3, 5])
@pytest.mark.parametrize(("activation", "atom_channels"),
                         [("softmax", None), ("sparsemax", None), ("softmax", 4)])
def test_shared_dictionary_matches_its_formula(num_modalities, activation, atom_channels):
    dictionary = _shared(activation=activation, atom_channels=atom_channels, temperature=0.5)
    x = torch.randn(4, num_modalities, 6, dtype=torch.double) * 3
    out = dictionary(x)
    assert isinstance(out, SharedDictionaryOutput)
    assert out.activation.shape == (4, num_modalities, 5)
    assert out.reconstruction.shape == (4, num_modalities, 6)
    assert (out.activation >= 0).all()
    torch.testing.assert_close(out.activation.sum(-1), torch.ones(4, num_modalities,
                                                                  dtype=torch.double))
    expected_activation, expected_reconstruction = _dense_shared(dictionary, x)
    torch.testing.assert_close(out.activation, expected_activation)
    torch.testing.assert_close(out.reconstruction, expected_reconstruction)
    if atom_channels is None:  # the atoms live in the feature space: a convex combination
        torch.testing.assert_close(out.reconstruction, out.activation @ dictionary.atoms)
    if activation == "sparsemax":
        assert (out.activation == 0).any()


@pytest.mark.parametrize("atom_channels", [None, 4])
def test_shared_dictionary_masks_absent_modalities(atom_channels):
    dictionary = _shared(atom_channels=atom_channels)
    x = torch.randn(3, 3, 6, dtype=torch.double)
    present = torch.tensor([[True, True, False], [False, True, True], [True, True, True]])
    out = dictionary(x, present)
    full = dictionary(x)
    assert out.activation[~present].abs().max() == 0
    assert out.reconstruction[~present].abs().max() == 0
    torch.testing.assert_close(out.activation[present], full.activation[present])
    torch.testing.assert_close(out.reconstruction[present], full.reconstruction[present])
    # An absent modality's input, however wild, reaches nothing.
    wild = x.clone()
    wild[~present] = float("nan")
    again = dictionary(wild, present)
    torch.testing.assert_close(again.reconstruction[present], out.reconstruction[present])
    assert again.activation[~present].abs().max() == 0
    assert again.reconstruction[~present].abs().max() == 0


def test_shared_dictionary_treats_modalities_independently():
    dictionary = _shared()
    x = torch.randn(2, 3, 6, dtype=torch.double)
    changed = x.clone()
    changed[:, 1] += 5.0
    out, again = dictionary(x), dictionary(changed)
    for part in (0, 2):
        torch.testing.assert_close(again.activation[:, part], out.activation[:, part])
    assert not torch.allclose(again.activation[:, 1], out.activation[:, 1])


def test_shared_dictionary_temperature_and_gradients():
    x = torch.randn(8, 3, 6, dtype=torch.double)
    entropy = []
    for temperature in (4.0, 0.1):
        a = _shared(temperature=temperature)(x).activation
        entropy.append(-(a * a.log()).sum(-1).mean())
    assert entropy[1] < entropy[0]

    dictionary = _shared(atom_channels=4)
    dictionary(x).reconstruction.pow(2).sum().backward()
    for name, parameter in dictionary.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_shared_dictionary_errors_and_repr():
    for kwargs, message in [({"atoms": 0}, "atoms"), ({"atom_channels": 0}, "atom_channels"),
                            ({"temperature": 0.0}, "temperature"),
                            ({"activation": "relu"}, "activation")]:
        arguments = {"channels": 4, "atoms": 3, **kwargs}
        with pytest.raises(ValueError, match=f"ModalitySharedDictionary.*{message}"):
            ModalitySharedDictionary(**arguments)
    with pytest.raises(ValueError, match=r"ModalitySharedDictionary: expected x of shape \(B, M, 6\)"):
        _shared()(torch.randn(2, 6, dtype=torch.double))
    assert repr(_shared()) == ("ModalitySharedDictionary(6, atoms=5, activation='softmax', "
                               "temperature=1.0)")
    assert repr(_shared(atom_channels=4)) == (
        "ModalitySharedDictionary(6, atoms=5, atom_channels=4, activation='softmax', "
        "temperature=1.0)")
    assert _shared().num_atoms == 5
    assert _shared().output is None
