import numpy as np
import pytest

from dhmd_graph.inspect.dictionary import atom_usage, atoms_for_mass, plot_atom_activations
from dhmd_graph.inspect.spaces import collect_outputs


def test_atoms_for_mass():
    mass = np.array([0.1, 0.6, 0.05, 0.25])
    assert atoms_for_mass(mass, 0.5) == 1
    assert atoms_for_mass(mass, 0.6) == 1
    assert atoms_for_mass(mass, 0.9) == 3
    assert atoms_for_mass(mass, 1.0) == 4
    assert atoms_for_mass(np.full(10, 0.1), 0.9) == 9


def test_uniform_activations_use_every_atom():
    usage = atom_usage(np.full((5, 3, 8), 1 / 8))
    assert usage.atoms_50 == 4 and usage.atoms_90 == 8
    assert usage.entropy == pytest.approx(np.log(8))
    assert usage.perplexity == pytest.approx(8)
    np.testing.assert_allclose(usage.modality_perplexity, 8)
    assert usage.sample_perplexity == pytest.approx(8)
    assert usage.modality_distance == pytest.approx(0.0)
    np.testing.assert_allclose(usage.mean_activation.sum(-1), 1.0)


def test_modalities_on_disjoint_atoms():
    atoms = np.zeros((4, 2, 6))
    atoms[:, 0, 0] = 1.0  # modality 0 always atom 0
    atoms[:, 1, 3] = 1.0  # modality 1 always atom 3
    usage = atom_usage(atoms)
    assert usage.atoms_50 == 1 and usage.atoms_90 == 2
    assert usage.perplexity == pytest.approx(2.0)
    np.testing.assert_allclose(usage.modality_perplexity, 1.0)
    assert usage.sample_perplexity == pytest.approx(1.0)
    assert usage.modality_distance == pytest.approx(1.0)
    np.testing.assert_allclose(usage.mass, [0.5, 0, 0, 0.5, 0, 0])


def test_samples_on_one_atom_each_but_different_atoms():
    atoms = np.zeros((4, 1, 4))
    atoms[np.arange(4), 0, np.arange(4)] = 1.0  # sample i uses atom i only
    usage = atom_usage(atoms)
    assert usage.sample_perplexity == pytest.approx(1.0)
    assert usage.perplexity == pytest.approx(4.0)


def test_atom_usage_rejects_a_bad_shape():
    with pytest.raises(ValueError, match=r"\(N, M, K\)"):
        atom_usage(np.ones((3, 4)))


def test_plot_atom_activations(trained_model, loader, tmp_path, check_figure):
    outputs = collect_outputs(trained_model, loader)
    figure = plot_atom_activations(outputs)
    figure.savefig(tmp_path / "atoms.png", dpi=60)
    check_figure(tmp_path / "atoms.png")
    assert sum(axis.get_label() != "<colorbar>" for axis in figure.axes) >= 2


def test_plot_atom_activations_without_dictionary(trained_model, loader):
    outputs = collect_outputs(trained_model, loader)
    spaces = {name: space._replace(atoms=None) for name, space in outputs.spaces.items()}
    with pytest.raises(ValueError, match="no dictionary"):
        plot_atom_activations(outputs._replace(spaces=spaces))
