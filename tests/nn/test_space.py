import pytest
import torch

from dhmd_graph.nn import (
    DecoupledSpace,
    DynamicGraphDistill,
    MaskedPooling,
    ModalitySharedDictionary,
    ResidualHead,
    SpaceOutput,
)
from dhmd_graph.nn.masking import length_mask


def _space(num_modalities: int, channels: int = 6, atoms: int | None = 4, fusion="features",
           out_channels=None, **kwargs) -> DecoupledSpace:
    torch.manual_seed(0)
    graph = DynamicGraphDistill(1, channels, 3, out_channels=out_channels)
    features = out_channels or channels
    dictionary = None if atoms is None else ModalitySharedDictionary(features, atoms)
    return DecoupledSpace([ResidualHead(channels) for _ in range(num_modalities)], graph,
                          dictionary, readouts=[MaskedPooling(channels)
                                                for _ in range(num_modalities)],
                          fusion=fusion, readout_channels=channels, **kwargs)


def _inputs(num_modalities: int, batch_size: int = 3, channels: int = 6, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    lengths = [torch.randint(1, 6, (batch_size,), generator=generator)
               for _ in range(num_modalities)]
    sequences = [torch.randn(batch_size, 5, channels, generator=generator) for _ in lengths]
    masks = [length_mask(length, 5) for length in lengths]
    return sequences, masks


@pytest.mark.parametrize("num_modalities", [2, 3, 4])
@pytest.mark.parametrize("out_channels", [None, 5])
def test_shapes_for_any_number_of_modalities(num_modalities, out_channels):
    space = _space(num_modalities, out_channels=out_channels)
    sequences, masks = _inputs(num_modalities)
    present = torch.ones(3, num_modalities, dtype=torch.bool)
    out = space(sequences, masks, present)
    features = out_channels or 6
    assert isinstance(out, SpaceOutput)
    assert out.logits.shape == (3, num_modalities)
    assert out.representation.shape == (3, num_modalities, 6)
    assert out.features.shape == (3, num_modalities, features)
    assert out.edges.edge_index.shape == (2, 3 * num_modalities * (num_modalities - 1))
    assert out.dictionary.activation.shape == (3, num_modalities, 4)
    assert out.dictionary.reconstruction.shape == (3, num_modalities, features)
    assert out.fusion.shape == (3, num_modalities * features) == (3, space.fusion_channels)
    assert ((out.fusion > 0) & (out.fusion < 1)).all()  # sigma blocks
    out.fusion.sum().backward()
    for name, parameter in space.named_parameters():
        if not name.startswith("graph.lin_logit"):  # logits enter the fusion only via w
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize("num_modalities", [2, 3, 4])
def test_an_absent_modality_reaches_nothing_of_its_sample(num_modalities):
    space = _space(num_modalities).eval()
    sequences, masks = _inputs(num_modalities)
    present = torch.ones(3, num_modalities, dtype=torch.bool)
    present[1, 0] = False
    changed = [x.clone() for x in sequences]
    changed[0][1] = torch.randn_like(changed[0][1]) * 10
    first, second = space(sequences, masks, present), space(changed, masks, present)
    width = space.feature_channels
    for a, b in ((first.features, second.features),
                 (first.dictionary.reconstruction, second.dictionary.reconstruction),
                 (first.dictionary.activation, second.dictionary.activation)):
        torch.testing.assert_close(a[1], b[1])
        assert (a[1, 0] == 0).all()  # the absent node's root term is masked
    torch.testing.assert_close(first.fusion[1], second.fusion[1])
    assert (first.fusion[1, :width] == 0).all()
    torch.testing.assert_close(first.logits[1, 1:], second.logits[1, 1:])
    # Its edges are gone; the other samples keep all of theirs.
    teacher, student = first.edges.edge_index
    assert not ((teacher == num_modalities) | (student == num_modalities)).any()
    # Sanity: with the modality present the change does reach its sample.
    full = torch.ones_like(present)
    assert not torch.allclose(space(sequences, masks, full).fusion[1],
                              space(changed, masks, full).fusion[1])


def test_fusion_inputs_and_validation():
    readout = _space(3, fusion="readout", atoms=None)
    sequences, masks = _inputs(3)
    present = torch.ones(3, 3, dtype=torch.bool)
    out = readout(sequences, masks, present)
    g = readout.readouts[0](sequences[0], masks[0])
    torch.testing.assert_close(out.fusion[:, :6], torch.sigmoid(readout.fusion[0](g)))
    assert out.dictionary is None
    none = _space(3, fusion="none")
    assert none(sequences, masks, present).fusion is None and none.fusion_channels == 0
    with pytest.raises(ValueError, match="fusion"):
        _space(3, fusion="sum")
    with pytest.raises(ValueError, match="at least 2"):
        _space(1)
    with pytest.raises(ValueError, match="dictionary"):
        DecoupledSpace([ResidualHead(6)] * 2, DynamicGraphDistill(1, 6, 3),
                       ModalitySharedDictionary(5, 2))
    assert repr(_space(2)) == ("DecoupledSpace(modalities=2, features=6, propagate=True, "
                               "atoms=4, fusion='features')")


def test_without_propagation_the_features_are_the_representations():
    space = _space(3, propagate=False).eval()
    sequences, masks = _inputs(3)
    out = space(sequences, masks, torch.ones(3, 3, dtype=torch.bool))
    torch.testing.assert_close(out.features, out.representation)


def test_pruned_edges():
    space = _space(3, edges=[(0, 1), (0, 2)]).eval()
    sequences, masks = _inputs(3)
    out = space(sequences, masks, torch.ones(3, 3, dtype=torch.bool))
    assert out.edges.edge_index.shape == (2, 3 * 2)
    # Text (modality 0) has no teacher: its GD output is its own representation.
    torch.testing.assert_close(out.features[:, 0], out.representation[:, 0])
