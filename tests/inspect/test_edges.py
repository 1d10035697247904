import json
from collections import defaultdict

import numpy as np
import pytest

from dhmd_graph.inspect.edges import (
    edge_graphs,
    edge_history,
    plot_edge_evolution,
    plot_edge_graphs,
)
from dhmd_graph.inspect.spaces import collect_outputs
from dhmd_graph.train.run_folder import read_log

MODALITIES = ["text", "audio", "vision"]
ALL_EDGES = {(t, s) for t in MODALITIES for s in MODALITIES if t != s}


def test_graph_normalisation_sums_to_one_per_graph(trained_model, loader):
    graphs = edge_graphs(collect_outputs(trained_model, loader))
    assert set(graphs) == {"homogeneous", "heterogeneous"}
    for space, graph in graphs.items():
        assert list(graph.nodes) == MODALITIES
        assert [graph.nodes[m]["index"] for m in MODALITIES] == [0, 1, 2]
        assert set(graph.edges) == ALL_EDGES
        assert graph.graph == {"space": space, "normalize": "graph", "num_samples": 24}
        means = [data["mean"] for *_, data in graph.edges(data=True)]
        assert sum(means) == pytest.approx(1.0, abs=1e-5)
        for *_, data in graph.edges(data=True):
            assert data["count"] == 24 and data["std"] >= 0.0 and "prior" not in data


def test_target_normalisation_sums_to_one_per_student(train_model, loader):
    graphs = edge_graphs(collect_outputs(train_model(normalize="target"), loader))
    for graph in graphs.values():
        assert graph.graph["normalize"] == "target"
        for student in MODALITIES:
            incoming = [data["mean"] for *_, data in graph.in_edges(student, data=True)]
            assert len(incoming) == 2
            assert sum(incoming) == pytest.approx(1.0, abs=1e-5)


def test_prior_and_learned_parts(train_model, loader):
    model = train_model(prior={"text->audio": 1.0, "text->vision": 1.0})
    for graph in edge_graphs(collect_outputs(model, loader)).values():
        edges = list(graph.edges(data=True))
        for *_, data in edges:
            assert data["mean"] == pytest.approx(data["prior"] + data["learned"], abs=1e-6)
        assert sum(d["prior"] for *_, d in edges) == pytest.approx(1.0, abs=1e-5)
        assert sum(d["learned"] for *_, d in edges) == pytest.approx(1.0, abs=1e-5)
        prior = {(t, s): d["prior"] for t, s, d in edges}
        assert prior["text", "audio"] == pytest.approx(prior["text", "vision"])
        assert prior["text", "audio"] > 10 * prior["audio", "text"]


def test_pruned_edges_are_the_only_edges(train_model, loader):
    model = train_model(edges=["text->audio", "audio->vision", "vision->text"])
    for graph in edge_graphs(collect_outputs(model, loader)).values():
        assert set(graph.edges) == {("text", "audio"), ("audio", "vision"), ("vision", "text")}
        assert list(graph.nodes) == MODALITIES


def test_plot_edge_graphs(trained_model, loader, tmp_path, check_figure):
    figure = plot_edge_graphs(edge_graphs(collect_outputs(trained_model, loader)))
    figure.savefig(tmp_path / "edges.png", dpi=60)
    check_figure(tmp_path / "edges.png")


def _records() -> list[dict]:
    return [
        {"epoch": 1, "improved": True, "train/loss": 2.0, "valid/MAE": 1.0,
         "train/edge/homogeneous/text->audio": 0.2, "train/edge/heterogeneous/audio->text": 0.5},
        {"epoch": 2, "improved": True, "train/edge/homogeneous/text->audio": 0.3,
         "train/edge/heterogeneous/audio->text": 0.4},
        {"epoch": 3, "improved": False, "train/edge/heterogeneous/audio->text": 0.1},
    ]


def test_edge_history_reads_edge_keys_only(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps(record) + "\n" for record in _records()) + "\n")
    history = edge_history(read_log(log))
    assert history.epochs.tolist() == [1, 2, 3]
    assert history.best_epoch == 2
    assert set(history.spaces) == {"homogeneous", "heterogeneous"}
    np.testing.assert_allclose(history.spaces["heterogeneous"]["audio->text"], [0.5, 0.4, 0.1])
    homogeneous = history.spaces["homogeneous"]["text->audio"]
    np.testing.assert_allclose(homogeneous[:2], [0.2, 0.3])
    assert np.isnan(homogeneous[2])


def test_read_log_names_the_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="log.jsonl"):
        read_log(tmp_path / "log.jsonl")


def test_plot_edge_evolution(tmp_path, check_figure):
    rng = np.random.default_rng(0)
    records = []
    for epoch in range(1, 9):
        record: dict = defaultdict(float, epoch=epoch, improved=epoch < 6)
        for space in ("homogeneous", "heterogeneous"):
            for teacher, student in sorted(ALL_EDGES):
                record[f"train/edge/{space}/{teacher}->{student}"] = rng.uniform(0.1, 0.25)
        records.append(dict(record))
    figure = plot_edge_evolution(edge_history(records))
    figure.savefig(tmp_path / "evolution.png", dpi=60)
    check_figure(tmp_path / "evolution.png")
    assert len(figure.axes) == 2


def test_plot_edge_evolution_without_edges_says_why():
    with pytest.raises(ValueError, match="no 'train/edge"):
        plot_edge_evolution(edge_history([{"epoch": 1, "train/loss": 1.0}]))


def _edge_labels(axis) -> list[str]:
    return sorted(text.get_text() for text in axis.texts if "." in text.get_text())


def test_plot_shows_the_learned_part_and_the_prior_apart(train_model, loader, tmp_path,
                                                          check_figure):
    model = train_model(prior={"text->audio": 1.0, "text->vision": 1.0})
    graphs = edge_graphs(collect_outputs(model, loader))
    figure = plot_edge_graphs(graphs)
    axes = [axis for axis in figure.axes if axis.get_label() != "<colorbar>"]
    assert len(axes) == 4  # learned E of both spaces above, their priors below
    for column, graph in enumerate(graphs.values()):
        top, bottom = axes[column], axes[2 + column]
        assert "learned edge weight E" in top.get_title()
        assert "fixed prior p" in bottom.get_title()
        assert _edge_labels(top) == sorted(f"{d['learned']:.3f}" for *_, d in graph.edges(
            data=True))
        assert _edge_labels(bottom) == sorted(f"{d['prior']:.3f}" for *_, d in graph.edges(
            data=True))
    figure.savefig(tmp_path / "edges.png", dpi=60)
    check_figure(tmp_path / "edges.png")
    assert len(plot_edge_graphs(graphs, show_prior=False).axes) == 3  # two panels, colorbar


def test_plot_without_a_prior_has_one_row_of_total_weights(trained_model, loader):
    graphs = edge_graphs(collect_outputs(trained_model, loader))
    figure = plot_edge_graphs(graphs)
    panels = figure.axes[:2]
    assert len(figure.axes) == 3
    for axis, graph in zip(panels, graphs.values(), strict=True):
        assert _edge_labels(axis) == sorted(f"{w:.3f}" for *_, w in graph.edges(data="mean"))


def _space(weight, prior=None, normalize="graph"):
    from dhmd_graph.inspect.spaces import SpaceOutputs

    weight = np.asarray(weight, float)
    n = len(weight)
    return SpaceOutputs(logits=np.zeros((n, 3)), features=np.zeros((n, 3, 2)),
                        edge_weight=weight, atoms=None, normalize=normalize,
                        edge_prior=None if prior is None else np.asarray(prior, float))


def _graph(values):
    """A (3, 3) [teacher, student] matrix with the six off-diagonal ``values`` in the order
    t->a, t->v, a->t, a->v, v->t, v->a."""
    matrix = np.full((3, 3), np.nan)
    for (t, s), value in zip([(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)], values,
                             strict=True):
        matrix[t, s] = value
    return matrix


PRIOR = _graph([0.45, 0.45, 0.025, 0.025, 0.025, 0.025])  # text teaches


def test_prior_agreement_of_e_equal_to_the_prior():
    from dhmd_graph.inspect.edges import prior_agreement

    prior = np.stack([PRIOR] * 4)  # (4, 3, 3)
    agreement = prior_agreement(_space(2 * prior, prior))  # w = E + p with E = p
    assert agreement.to_prior == pytest.approx(0.0)
    assert agreement.spread == pytest.approx(0.0)
    # uniform is 1/6 per edge: TV = (2 * (0.45 - 1/6) + 4 * (1/6 - 0.025)) / 2
    assert agreement.to_uniform == pytest.approx((2 * (0.45 - 1 / 6) + 4 * (1 / 6 - 0.025)) / 2)
    np.testing.assert_allclose(agreement.share, [[0.9, 0.05, 0.05]] * 4)
    np.testing.assert_allclose(agreement.prior_share, agreement.share)


def test_prior_agreement_of_a_uniform_graph_without_prior_and_of_a_varying_one():
    from dhmd_graph.inspect.edges import prior_agreement

    uniform = np.stack([_graph([1 / 6] * 6)] * 3)
    agreement = prior_agreement(_space(uniform))
    assert np.isnan(agreement.to_prior) and agreement.prior_share is None
    assert agreement.to_uniform == pytest.approx(0.0) and agreement.spread == pytest.approx(0.0)
    varying = np.stack([_graph([0.5, 0.5, 0, 0, 0, 0]), _graph([0, 0, 0.5, 0.5, 0, 0])])
    agreement = prior_agreement(_space(varying))
    assert agreement.spread == pytest.approx(0.5)  # each sample half-way from the mean graph
    assert agreement.to_uniform == pytest.approx(2 / 3)


def test_prior_agreement_per_student_groups_and_absent_modalities():
    from dhmd_graph.inspect.edges import prior_agreement

    # normalize="target": each student's two incoming edges sum to one
    target = _graph([1.0, 0.5, 0.5, 0.5, 0.5, 0.0])  # audio hears only text, text a/v alike
    agreement = prior_agreement(_space(target[None], normalize="target"))
    # students: text (a, v) = (0.5, 0.5): 0; audio (t, v) = (1, 0): 0.5; vision (0.5, 0.5): 0
    assert agreement.to_uniform == pytest.approx(0.5 / 3)
    absent = _graph([0.5, np.nan, 0.5, np.nan, np.nan, np.nan])  # vision absent
    agreement = prior_agreement(_space(absent[None]))
    assert agreement.to_uniform == pytest.approx(0.0)
    assert np.isnan(agreement.share[0, 2]) and agreement.share[0, 0] == pytest.approx(0.5)
