import numpy as np
import pytest
import torch

from dhmd_graph.inspect.spaces import (
    collect_outputs,
    dense_edge_weights,
    embed_spaces,
    label_sign,
    modality_separation,
    plot_spaces,
)


def test_dense_edge_weights_places_each_edge_and_leaves_nan_elsewhere():
    # 2 samples, 3 modalities: nodes b*3+m. Sample 0: text->audio, vision->text;
    # sample 1: audio->vision only.
    edge_index = torch.tensor([[0, 2, 4], [1, 0, 5]])
    dense = dense_edge_weights(edge_index, torch.tensor([0.1, 0.2, 0.3]), 2, 3)
    assert dense.shape == (2, 3, 3)
    assert dense[0, 0, 1] == pytest.approx(0.1)
    assert dense[0, 2, 0] == pytest.approx(0.2)
    assert dense[1, 1, 2] == pytest.approx(0.3)
    assert int(torch.isnan(dense).sum()) == 2 * 9 - 3


def test_collect_outputs_shapes_and_predictions(trained_model, loader):
    trained_model.train()
    outputs = collect_outputs(trained_model, loader)
    assert trained_model.training, "the model's mode is restored"
    assert outputs.modalities == ("text", "audio", "vision")
    n = len(loader.dataset)
    assert outputs.labels.shape == outputs.prediction.shape == (n,)
    homogeneous, heterogeneous = outputs.spaces["homogeneous"], outputs.spaces["heterogeneous"]
    assert homogeneous.features.shape == (n, 3, 8)
    assert heterogeneous.features.shape == (n, 3, 16)  # (M - 1) d
    assert homogeneous.atoms.shape == heterogeneous.atoms.shape == (n, 3, 6)
    assert homogeneous.edge_prior is None and homogeneous.normalize == "graph"
    # Every off-diagonal edge in every sample, nothing on the diagonal.
    diagonal = np.eye(3, dtype=bool)
    assert np.isnan(homogeneous.edge_weight[:, diagonal]).all()
    assert not np.isnan(homogeneous.edge_weight[:, ~diagonal]).any()
    trained_model.eval()
    with torch.no_grad():
        expected = torch.cat([trained_model(batch).prediction for batch in loader]).numpy()
    np.testing.assert_allclose(outputs.prediction, expected, rtol=1e-6, atol=1e-6)


def test_modality_separation_tells_separated_from_mixed_modalities():
    rng = np.random.default_rng(0)
    n, m, f = 60, 3, 8
    mixed = rng.normal(size=(n, m, f))
    centres = 6.0 * np.eye(m, f)  # one direction per modality
    separated = centres[None] + rng.normal(size=(n, m, f))
    mixed_score = modality_separation(mixed)
    separated_score = modality_separation(separated)
    assert mixed_score["chance"] == pytest.approx((n - 1) / (n * m - 1))
    assert abs(mixed_score["knn_purity"] - mixed_score["chance"]) < 0.1
    assert abs(mixed_score["silhouette"]) < 0.1
    assert abs(mixed_score["separation"]) < 0.15
    assert separated_score["knn_purity"] > 0.95
    assert separated_score["separation"] > 0.9
    assert separated_score["silhouette"] > 0.5


def test_modality_separation_needs_more_points_than_neighbors():
    with pytest.raises(ValueError, match="neighbors"):
        modality_separation(np.zeros((2, 3, 4)), neighbors=10)


def test_label_sign():
    assert label_sign(np.array([-0.3, 0.0, 2.0])).tolist() == [0, 1, 2]


def test_embed_spaces_methods_and_fallback(trained_model, loader):
    outputs = collect_outputs(trained_model, loader)
    pca = embed_spaces(outputs, method="pca")
    assert set(pca) == {"homogeneous", "heterogeneous"}
    points = 3 * len(outputs.labels)
    for embedding in pca.values():
        assert embedding.method == "pca"
        assert embedding.points.shape == (points, 2)
        assert np.bincount(embedding.modality).tolist() == [len(outputs.labels)] * 3
    few = embed_spaces(outputs, method="tsne", max_samples=4)  # 12 points: PCA
    assert few["homogeneous"].method == "pca" and few["homogeneous"].points.shape == (12, 2)
    tsne = embed_spaces(outputs, method="tsne", max_samples=12)  # 36 points
    assert tsne["heterogeneous"].method == "tsne"
    assert np.isfinite(tsne["heterogeneous"].points).all()
    with pytest.raises(ValueError, match="method"):
        embed_spaces(outputs, method="umap")


def test_plot_spaces_writes_a_figure(trained_model, loader, tmp_path, check_figure):
    outputs = collect_outputs(trained_model, loader)
    figure = plot_spaces(embed_spaces(outputs, method="pca"), outputs.modalities)
    figure.savefig(tmp_path / "spaces.png", dpi=60)
    check_figure(tmp_path / "spaces.png")
    assert len(figure.axes) == 4
