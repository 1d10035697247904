r"""Dictionary activations: which atoms each modality uses, and how many atoms are used.

Each decoupled space has one modality-shared dictionary of ``K`` atoms after its GD-Unit
(:class:`~dhmd_graph.nn.ModalitySharedDictionary`); a sample's modality activates them,
from its GD output, with a distribution :math:`a_m \in \Delta^K`
(``output.<space>.dictionary.activation``, collected by
:func:`~dhmd_graph.inspect.collect_outputs`).
:func:`atom_usage` summarises the activations of a split: the mean activation per
modality, how many atoms carry 50 % and 90 % of the activation mass, and the entropy
of that mass (its exponential, the *perplexity*, is an effective number of atoms; a
collapsed dictionary has a perplexity near 1). :func:`plot_atom_activations` draws the
mean activation per modality as a heatmap per space.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
from matplotlib.figure import Figure

from dhmd_graph.inspect.spaces import SplitOutputs

__all__ = ["AtomUsage", "atom_usage", "atoms_for_mass", "plot_atom_activations"]

MAX_ATOM_TICKS = 32
"""Atom ids are written under the heatmap columns up to this many atoms."""


def atoms_for_mass(mass: np.ndarray, fraction: float) -> int:
    r"""The fewest atoms whose mass adds up to at least ``fraction`` of the total.

    Args:
        mass (np.ndarray): ``(K,)`` non-negative mass per atom.
        fraction (float): In ``(0, 1]``.
    """
    share = np.sort(mass)[::-1].cumsum() / mass.sum()  # (K,)
    return int(min(np.searchsorted(share, fraction - 1e-9) + 1, mass.size))


class AtomUsage(NamedTuple):
    r"""How the samples of a split use one space's dictionary.

    Attributes:
        mean_activation (np.ndarray): ``(M, K)`` mean activation of every atom per
            modality (each row sums to one).
        mass (np.ndarray): ``(K,)`` the share of every atom in the activation mass of
            all samples and modalities (sums to one).
        atoms_50 (int): The fewest atoms that carry 50 % of the mass.
        atoms_90 (int): The fewest atoms that carry 90 % of the mass.
        entropy (float): Entropy of :attr:`mass` in nats, at most :math:`\log K`.
        perplexity (float): :math:`\exp` of the entropy, an effective number of atoms
            in ``[1, K]``.
        modality_perplexity (np.ndarray): ``(M,)`` the same per modality.
        sample_perplexity (float): :math:`\exp` of the mean entropy of the individual
            activations :math:`a_m`: how many atoms one sample's modality spreads over
            (low with a high :attr:`perplexity`: samples pick few atoms, but different
            ones).
        modality_distance (float): The mean total-variation distance between the
            mean activations of two modalities, in ``[0, 1]``: 0 when all modalities
            use the atoms alike, 1 when they use disjoint atoms.
    """

    mean_activation: np.ndarray
    mass: np.ndarray
    atoms_50: int
    atoms_90: int
    entropy: float
    perplexity: float
    modality_perplexity: np.ndarray
    sample_perplexity: float
    modality_distance: float


def _entropy(distribution: np.ndarray) -> np.ndarray:
    """Entropy in nats over the last axis (``0 log 0 = 0``)."""
    logs = np.log(np.where(distribution > 0, distribution, 1.0))
    return -(distribution * logs).sum(-1)


def atom_usage(atoms: np.ndarray) -> AtomUsage:
    r"""Summarises the dictionary activations of one space over a split.

    Args:
        atoms (np.ndarray): ``(N, M, K)`` activations of ``N`` samples, ``M``
            modalities and ``K`` atoms (each ``(k,)`` row a distribution over atoms).
    """
    if atoms.ndim != 3 or atoms.shape[0] == 0:
        raise ValueError(
            f"atom_usage: expected (N, M, K) activations with N >= 1, found shape "
            f"{tuple(atoms.shape)}; pass SpaceOutputs.atoms of a model with a dictionary."
        )
    per_modality = atoms.mean(0)  # (M, K)
    per_modality = per_modality / per_modality.sum(-1, keepdims=True)
    mass = per_modality.mean(0)  # (K,)
    entropy = float(_entropy(mass))
    first, second = np.triu_indices(per_modality.shape[0], k=1)
    distance = 0.5 * np.abs(per_modality[first] - per_modality[second]).sum(-1)  # (pairs,)
    return AtomUsage(
        mean_activation=per_modality,
        mass=mass,
        atoms_50=atoms_for_mass(mass, 0.5),
        atoms_90=atoms_for_mass(mass, 0.9),
        entropy=entropy,
        perplexity=float(np.exp(entropy)),
        modality_perplexity=np.exp(_entropy(per_modality)),
        sample_perplexity=float(np.exp(_entropy(atoms).mean())),
        modality_distance=float(distance.mean()) if distance.size else 0.0,
    )


def plot_atom_activations(outputs: SplitOutputs,
                          usages: Mapping[str, AtomUsage] | None = None) -> Figure:
    r"""Heatmaps of the mean atom activation per modality, one panel per space.

    Rows are modalities, columns atoms sorted by their overall mass (most used
    left), so a modality-specific atom shows as a bright cell alone in its column
    and shared atoms as bright columns.

    Args:
        outputs (SplitOutputs): From :func:`~dhmd_graph.inspect.collect_outputs`.
        usages (Mapping[str, AtomUsage], optional): :func:`atom_usage` per space, if
            already computed. (default: :obj:`None`)

    Raises:
        ValueError: If no space has dictionary activations.
    """
    if usages is None:
        usages = {name: atom_usage(space.atoms)
                  for name, space in outputs.spaces.items() if space.atoms is not None}
    if not usages:
        raise ValueError("plot_atom_activations: the model has no dictionary "
                         "(dictionary.atoms=0), so there are no activations to draw.")
    figure = Figure(figsize=(10.0, 1.6 + 0.9 * len(outputs.modalities) * len(usages)),
                    layout="constrained")
    axes = figure.subplots(len(usages), 1, squeeze=False)[:, 0]
    for axis, (space, usage) in zip(axes, usages.items(), strict=True):
        order = np.argsort(-usage.mass, kind="stable")
        image = axis.imshow(usage.mean_activation[:, order], aspect="auto", cmap="magma",
                            interpolation="nearest", vmin=0.0)
        axis.set_yticks(range(len(outputs.modalities)), outputs.modalities)
        if order.size <= MAX_ATOM_TICKS:
            axis.set_xticks(range(order.size), [str(atom) for atom in order])
        else:
            axis.set_xticks([])
        axis.set_xlabel("atom, most used first")
        axis.set_title(f"{space} dictionary: {usage.atoms_50} atoms carry 50 % of the mass, "
                       f"{usage.atoms_90} carry 90 %, perplexity {usage.perplexity:.1f} "
                       f"of {usage.mass.size}", fontsize=10)
        figure.colorbar(image, ax=axis, label="mean activation")
    return figure
