import pytest
import torch

from dhmd_graph.nn import ModalityGraph, modality_graph, restrict_to_present


def test_modality_graph_layout_for_b_graphs():
    graph = modality_graph(3, batch_size=2)
    assert isinstance(graph, ModalityGraph)
    assert graph.edge_index.dtype == torch.long
    assert graph.edge_index.shape == (2, 2 * 6)
    assert graph.batch.tolist() == [0, 0, 0, 1, 1, 1]
    assert graph.modality.tolist() == [0, 1, 2, 0, 1, 2]
    # Sample 0 holds all 6 ordered pairs, teacher major; sample 1 is shifted by M = 3.
    assert graph.edge_index[:, :6].t().tolist() == [
        [0, 1], [0, 2], [1, 0], [1, 2], [2, 0], [2, 1],
    ]
    assert torch.equal(graph.edge_index[:, 6:], graph.edge_index[:, :6] + 3)


@pytest.mark.parametrize("num_modalities", [2, 3, 5])
def test_modality_graph_edges_stay_inside_their_sample(num_modalities):
    batch_size = 4
    edge_index, batch, modality = modality_graph(num_modalities, batch_size)
    assert edge_index.shape == (2, batch_size * num_modalities * (num_modalities - 1))
    assert batch.shape == modality.shape == (batch_size * num_modalities,)
    teacher, student = edge_index
    assert torch.equal(batch[teacher], batch[student])
    assert bool((modality[teacher] != modality[student]).all())
    # Every sample has every ordered pair exactly once.
    pairs = {(int(t), int(s)) for t, s in edge_index.t()}
    assert len(pairs) == edge_index.size(1)


def test_modality_graph_pruned_edges_keep_their_order():
    edges = [(0, 2), (0, 1), (2, 1)]
    graph = modality_graph(3, batch_size=2, edges=edges)
    assert graph.edge_index.t().tolist() == [[0, 2], [0, 1], [2, 1], [3, 5], [3, 4], [5, 4]]


def test_modality_graph_is_cached_per_arguments():
    graph = modality_graph(3, 2, edges=[(0, 1), (0, 2)])
    assert modality_graph(3, 2, edges=((0, 1), (0, 2))) is graph
    assert modality_graph(3, 2, edges=[(0, 1), (0, 2)], device="cpu") is graph
    assert modality_graph(3, 2, edges=[(0, 1), (0, 2)], device=torch.device("cpu")) is graph
    assert modality_graph(3, 2) is not graph
    assert modality_graph(3, 4, edges=[(0, 1), (0, 2)]).edge_index.shape == (2, 8)


@pytest.mark.parametrize(
    ("num_modalities", "batch_size", "edges", "message"),
    [
        (1, 2, None, "at least 2"),
        (3, 0, None, "batch_size"),
        (3, 2, [(1, 1)], "self-loop"),
        (3, 2, [(0, 3)], "outside"),
        (3, 2, [(-1, 0)], "outside"),
        (3, 2, [(0, 1), (2, 1), (0, 1)], "twice"),
    ],
)
def test_modality_graph_rejects_bad_arguments(num_modalities, batch_size, edges, message):
    with pytest.raises(ValueError, match=message):
        modality_graph(num_modalities, batch_size, edges=edges)


def test_restrict_to_present_drops_edges_of_absent_nodes():
    graph = modality_graph(3, batch_size=2)
    present = torch.tensor([[True, True, False], [True, True, True]])
    edge_index = restrict_to_present(graph.edge_index, present)
    # Sample 0 keeps only 0 <-> 1; sample 1 keeps all six edges.
    assert edge_index.t().tolist() == [
        [0, 1], [1, 0], [3, 4], [3, 5], [4, 3], [4, 5], [5, 3], [5, 4],
    ]
    assert torch.equal(restrict_to_present(graph.edge_index, present.flatten()), edge_index)
    # The cached graph itself is untouched.
    assert graph.edge_index.shape == (2, 12)


def test_restrict_to_present_rejects_non_bool_masks():
    graph = modality_graph(2, batch_size=1)
    with pytest.raises(ValueError, match="bool"):
        restrict_to_present(graph.edge_index, torch.ones(2))


@pytest.mark.slow
def test_modality_graph_compiles_inside_a_model():
    def node_count_per_sample(values):
        graph = modality_graph(3, batch_size=2)
        return torch.zeros(2).index_add(0, graph.batch, values)

    compiled = torch.compile(node_count_per_sample, fullgraph=True)
    torch.testing.assert_close(compiled(torch.ones(6)), torch.tensor([3.0, 3.0]))
