"""Edge weights against a planted per-sample modality reliability."""

import warnings

import numpy as np
import pytest
from torch.utils.data import DataLoader

from dhmd_graph.data import MultimodalDataset, collate
from dhmd_graph.inspect import report as report_module
from dhmd_graph.inspect.reliability import edge_reliability, outgoing_weight
from dhmd_graph.inspect.spaces import SpaceOutputs, SplitOutputs, collect_outputs

MODALITIES = ("text", "audio", "vision")
NAN = np.nan


def _space(weight, prior=None):
    n = len(weight)
    return SpaceOutputs(logits=np.zeros((n, 3)), features=np.zeros((n, 3, 2)),
                        edge_weight=np.asarray(weight, float),
                        edge_prior=None if prior is None else np.asarray(prior, float),
                        atoms=None, normalize="graph")


def _sample(text_out, audio_out, vision_out):
    """A (3, 3) [teacher, student] matrix whose rows send the given totals (split evenly)."""
    w = np.full((3, 3), NAN)
    for teacher, total in enumerate((text_out, audio_out, vision_out)):
        for student in range(3):
            if student != teacher:
                w[teacher, student] = total / 2
    return w


def test_outgoing_weight_sums_the_rows_and_subtracts_the_prior():
    weight = np.stack([_sample(0.6, 0.3, 0.1), _sample(0.2, 0.2, 0.6)])  # (2, 3, 3)
    weight[1, 2] = NAN  # vision absent in sample 1: it teaches nothing
    weight[1, :, 2] = NAN
    np.testing.assert_allclose(outgoing_weight(_space(weight)),
                               [[0.6, 0.3, 0.1], [0.1, 0.1, NAN]])
    prior = np.where(np.isnan(weight), NAN, 0.05)  # p = 0.05 on every edge
    learned = outgoing_weight(_space(weight + prior, prior))
    np.testing.assert_allclose(learned, [[0.6, 0.3, 0.1], [0.1, 0.1, NAN]])
    total = outgoing_weight(_space(weight + prior, prior), part="weight")
    # Sample 1 keeps one edge per teacher, so one prior of 0.05 each.
    np.testing.assert_allclose(total, [[0.7, 0.4, 0.2], [0.15, 0.15, NAN]])
    with pytest.raises(ValueError, match="outgoing_weight: part"):
        outgoing_weight(_space(weight), part="prior")


def test_edge_reliability_on_a_graph_that_avoids_corrupted_teachers():
    # Text is corrupted in samples 2 and 3 and then sends 0.1 instead of 0.5; audio is
    # corrupted in sample 4 but its weight does not move; vision is never corrupted.
    weight = np.stack([_sample(0.5, 0.3, 0.2), _sample(0.5, 0.2, 0.3), _sample(0.1, 0.5, 0.4),
                       _sample(0.1, 0.6, 0.3), _sample(0.5, 0.3, 0.2), _sample(0.5, 0.3, 0.2)])
    reliability = np.ones((6, 3))
    reliability[[2, 3], 0] = 0.0
    reliability[4, 1] = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = edge_reliability(_space(weight), reliability, MODALITIES)
    assert list(result) == list(MODALITIES)

    text = result["text"]
    assert (text.reliable_count, text.corrupted_count) == (4, 2)
    assert text.reliable_mean == pytest.approx(0.5) and text.corrupted_mean == pytest.approx(0.1)
    assert text.difference == pytest.approx(0.4)
    assert text.correlation == pytest.approx(1.0)  # weight is a function of reliability

    audio = result["audio"]
    out_audio = np.array([0.3, 0.2, 0.5, 0.6, 0.3, 0.3])
    assert audio.correlation == pytest.approx(np.corrcoef(out_audio, reliability[:, 1])[0, 1])
    assert audio.corrupted_mean == pytest.approx(0.3)
    assert audio.reliable_mean == pytest.approx((0.3 + 0.2 + 0.5 + 0.6 + 0.3) / 5)

    vision = result["vision"]  # constant reliability: no correlation, no corrupted mean
    assert np.isnan(vision.correlation) and np.isnan(vision.corrupted_mean)
    assert vision.corrupted_count == 0 and vision.reliable_count == 6


def test_edge_reliability_skips_samples_where_the_teacher_is_absent():
    weight = np.stack([_sample(0.5, 0.3, 0.2), _sample(0.1, 0.5, 0.4), _sample(0.4, 0.3, 0.3)])
    weight[2, 0] = NAN  # text absent in sample 2
    weight[2, :, 0] = NAN
    reliability = np.array([[1.0, 1, 1], [0, 1, 1], [0, 1, 1]])  # ignored for sample 2's text
    text = edge_reliability(_space(weight), reliability, MODALITIES)["text"]
    assert (text.reliable_count, text.corrupted_count) == (1, 1)
    assert text.corrupted_mean == pytest.approx(0.1)
    with pytest.raises(ValueError, match=r"edge_reliability: expected a reliability of shape"):
        edge_reliability(_space(weight), reliability[:, :2], MODALITIES)


def _dataset_with_reliability(n=16):
    rng = np.random.default_rng(0)
    dims = {"text": 6, "audio": 4, "vision": 5}
    features = {m: rng.normal(size=(n, 8, d)).astype(np.float32) for m, d in dims.items()}
    lengths = {m: rng.integers(2, 9, size=n) for m in dims}
    reliability = np.ones((n, 3), dtype=np.float32)
    reliability[np.arange(n) % 4 == 1, 0] = 0.0  # text corrupted in every fourth sample
    reliability[np.arange(n) % 4 == 2, 2] = 0.0  # vision in others
    dataset = MultimodalDataset(features, lengths, rng.uniform(-3, 3, n).round(),
                                [f"s{i}$_$0" for i in range(n)],
                                extras={"modality_reliability": reliability})
    return dataset, reliability


def test_collect_outputs_carries_the_reliability_into_the_report(trained_model, tmp_path):
    dataset, reliability = _dataset_with_reliability()
    outputs = collect_outputs(trained_model, DataLoader(dataset, batch_size=5, collate_fn=collate))
    np.testing.assert_array_equal(outputs.extras["modality_reliability"], reliability)
    rows = edge_reliability(outputs.spaces["homogeneous"], reliability, outputs.modalities)
    assert rows["text"].corrupted_count == 4 and rows["audio"].corrupted_count == 0

    section = "\n".join(report_module._reliability_section(outputs))
    assert "## Edge weights and planted modality reliability" in section
    assert section.count("| homogeneous |") == 3 and section.count("| heterogeneous |") == 3
    assert "| 12 / 4 |" in section and "| 16 / 0 |" in section
    assert "of 4 (space, teacher) pairs" in section  # text and vision, in both spaces
    # Without planted reliability the report has no such section.
    plain = SplitOutputs(outputs.modalities, outputs.labels, outputs.prediction, outputs.spaces)
    assert plain.extras == {} and report_module._reliability_section(plain) == []

    report = report_module.write_report(trained_model, dataset, tmp_path / "report",
                                        method="pca")
    assert "planted modality reliability" in report.read_text()


def test_routing_accuracy_against_chance_and_the_prior():
    from dhmd_graph.inspect.reliability import routing_accuracy

    weight = np.stack([_sample(0.6, 0.3, 0.1), _sample(0.1, 0.6, 0.3),
                       _sample(0.2, 0.2, 0.6), _sample(0.5, 0.4, 0.1)])  # top: t, a, v, t
    reliability = np.array([[1.0, 0.2, 0.1],    # text most reliable: hit
                            [0.9, 0.3, 0.1],    # text, but audio sends most: miss
                            [0.5, 0.5, 0.5],    # all tied: any top teacher is a hit
                            [0.2, 0.9, 0.9]])   # audio and vision tied: text misses
    routing = routing_accuracy(_space(weight), reliability)
    assert routing.accuracy == pytest.approx(2 / 4) and routing.count == 4
    assert routing.chance == pytest.approx((1 / 3 + 1 / 3 + 1 + 2 / 3) / 4)
    assert np.isnan(routing.prior)
    prior = np.stack([_sample(0.9, 0.05, 0.05)] * 4)  # the prior always picks text
    routing = routing_accuracy(_space(weight + prior, prior), reliability)
    assert routing.accuracy == pytest.approx(2 / 4)  # E itself, not w
    assert routing.prior == pytest.approx(3 / 4)  # text is (one of) the most reliable 3 times


def test_routing_accuracy_skips_samples_with_an_absent_teacher():
    from dhmd_graph.inspect.reliability import routing_accuracy

    weight = np.stack([_sample(0.6, 0.3, 0.1), _sample(0.2, 0.2, 0.6)])
    weight[1, 2] = NAN
    weight[1, :, 2] = NAN
    routing = routing_accuracy(_space(weight), np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]))
    assert routing.count == 1 and routing.accuracy == 1.0


def test_report_draws_the_routing_figure_with_a_reliability(trained_model, tmp_path,
                                                            check_figure):
    from dhmd_graph.inspect.reliability import plot_edge_reliability

    dataset, reliability = _dataset_with_reliability()
    outputs = collect_outputs(trained_model, DataLoader(dataset, batch_size=8,
                                                        collate_fn=collate))
    figure = plot_edge_reliability(outputs, reliability)
    axes = figure.get_axes()
    assert len(axes) == 2 and all("chance 0.83" in axis.get_title() for axis in axes)
    section = "\n".join(report_module._routing_section(outputs, tmp_path, 80))
    assert "![routing](routing.png)" in section and "| homogeneous |" in section
    check_figure(tmp_path / "routing.png")
    plain = SplitOutputs(outputs.modalities, outputs.labels, outputs.prediction, outputs.spaces)
    assert report_module._routing_section(plain, tmp_path, 80) == []
