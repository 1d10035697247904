import dataclasses
import math

import pytest
import torch

from dhmd_graph.config import DHMDConfig, GraphConfig, ModalityConfig, apply_overrides
from dhmd_graph.data.batch import MultimodalBatch
from dhmd_graph.data.errors import DatasetError
from dhmd_graph.model import DHMD, dhmd_objective
from dhmd_graph.presets import ROUTING_GRAPH, preset

SMALL = ["width=8", "num_heads=2", "encoder.num_layers=1", "encoder.memory_layers=1",
         "dictionary.atoms=4", "homogeneous_graph.hidden_channels=4",
         "heterogeneous_graph.hidden_channels=4"]


def _graph_defaults(graph: GraphConfig) -> GraphConfig:
    """A preset's graph with the routing switches at GraphConfig's own defaults."""
    return dataclasses.replace(graph, **{name: getattr(GraphConfig(), name)
                                         for name in ROUTING_GRAPH})


def tiny_config(*overrides: str) -> DHMDConfig:
    """A small model with the mosi preset's priors and :class:`GraphConfig`'s default
    switches (the tests of the routing switches set them with overrides)."""
    config = DHMDConfig(
        modalities=[ModalityConfig("text", 6, kernel_size=3), ModalityConfig("audio", 3),
                    ModalityConfig("vision", 4, kernel_size=2)],
        homogeneous_graph=_graph_defaults(preset("mosi").homogeneous_graph),
        heterogeneous_graph=_graph_defaults(preset("mosi").heterogeneous_graph),
    )
    return apply_overrides(config, SMALL + list(overrides))


def make_batch(config: DHMDConfig, lengths: dict[str, list[int]], seed: int = 0) -> MultimodalBatch:
    """Random features, zero-padded to the longest length."""
    generator = torch.Generator().manual_seed(seed)
    features, lengths_out = {}, {}
    batch_size = len(next(iter(lengths.values())))
    for modality in config.modalities:
        length = torch.tensor(lengths[modality.name])
        size = int(length.max())
        if modality.input_dim is None:
            x = torch.randint(1, modality.vocab_size, (batch_size, size), generator=generator)
        else:
            x = torch.randn(batch_size, size, modality.input_dim, generator=generator)
        valid = torch.arange(size).unsqueeze(0) < length.unsqueeze(1)
        features[modality.name] = x * (valid if x.dim() == 2 else valid.unsqueeze(-1))
        lengths_out[modality.name] = length
    # Labels of one sign, so L1 gradients of a bias do not cancel across a tiny batch.
    labels = 1.0 + (torch.arange(batch_size) % 2).float()
    return MultimodalBatch(features, lengths_out, labels, [str(i) for i in range(batch_size)])


def outputs(model: DHMD, batch: MultimodalBatch, present=None) -> dict[str, torch.Tensor]:
    out = model(batch, present)
    values = {"prediction": out.prediction, "shared": out.shared_logit}
    for space, o in out.spaces.items():
        values |= {f"{space}/logits": o.logits, f"{space}/representation": o.representation,
                   f"{space}/features": o.features, f"{space}/weight": o.edges.weight}
        if o.dictionary is not None:
            values |= {f"{space}/atoms": o.dictionary.activation,
                       f"{space}/reconstruction": o.dictionary.reconstruction}
    return values


def check_training_step(model: DHMD, batch: MultimodalBatch) -> dict[str, torch.Tensor]:
    model.train()
    logs = model.training_step(batch)
    for key, value in logs.items():
        assert value.dim() == 0 and torch.isfinite(value), key
    logs["loss"].backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, f"{name} got an all-zero gradient"
    return logs


CASES = {
    "mosi-aligned": ("mosi", True, {"text": [6, 6], "audio": [6, 6], "vision": [6, 6]}),
    "mosi-unaligned": ("mosi", False, {"text": [6, 3], "audio": [9, 2], "vision": [11, 7]}),
    "mosei-aligned": ("mosei", True, {"text": [6, 6], "audio": [6, 6], "vision": [6, 6]}),
    "mosei-unaligned": ("mosei", False, {"text": [7, 5], "audio": [10, 1], "vision": [8, 4]}),
    "sims-unaligned": ("sims", False, {"text": [5, 4], "audio": [12, 6], "vision": [6, 2]}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_presets_forward_backward(case):
    name, aligned, lengths = CASES[case]
    torch.manual_seed(0)
    model = DHMD(apply_overrides(preset(name, aligned), ["encoder.num_layers=1",
                                                         "encoder.memory_layers=1"]))
    batch = make_batch(model.config, lengths)
    logs = check_training_step(model, batch)
    assert logs["loss"].requires_grad
    assert {"task", "reconstruction", "cycle", "orthogonality",
            "gd/homogeneous/logit", "gd/homogeneous/reg", "gd/heterogeneous/repr",
            "ctr/homogeneous", "ctr/heterogeneous",
            "edge/homogeneous/text->audio", "edge/heterogeneous/vision->audio"} <= set(logs)
    assert "gd/homogeneous/repr" not in logs  # the reference ignores it
    assert "margin" not in logs  # off by default: not in the figure, no effect in the ablation
    model.eval()
    prediction, target = model.predict_step(batch)
    assert prediction.shape == (2,)
    assert target is batch.labels


def test_four_modalities_with_token_ids_and_every_option():
    config = DHMDConfig(
        modalities=[ModalityConfig("words", None, kernel_size=2, vocab_size=20, embedding_dim=5),
                    ModalityConfig("audio", 3), ModalityConfig("vision", 4, kernel_size=3),
                    ModalityConfig("physio", 2, kernel_size=2)],
    )
    config = apply_overrides(config, SMALL + [
        "encoder.pooling=attention", "encoder.causal=false", "dictionary.usage_weight=0.1",
        "dictionary.activation=sparsemax", "dictionary.atom_channels=3",
        "homogeneous_graph.out_channels=5", "heterogeneous_graph.detach_teacher=true",
        "heterogeneous_graph.root_weight=false",
        'homogeneous_graph.prior={"words->audio": 1}', "homogeneous_graph.use_repr_term=true",
        "heterogeneous_graph.normalize=target",
        # 'target' normalisation: a student needs two teachers for the scorer to learn.
        'heterogeneous_graph.edges=["words->audio", "vision->audio", "audio->words"]',
    ])
    torch.manual_seed(0)
    model = DHMD(config)
    batch = make_batch(config, {"words": [5, 3, 2], "audio": [4, 4, 1], "vision": [6, 2, 3],
                                "physio": [3, 3, 1]})
    logs = check_training_step(model, batch)
    assert "usage/heterogeneous" in logs and "gd/homogeneous/repr" in logs
    assert "gd/heterogeneous/reg" not in logs  # no prior, no regulariser
    het = [k for k in logs if k.startswith("edge/heterogeneous/")]
    assert sorted(het) == ["edge/heterogeneous/audio->words", "edge/heterogeneous/vision->audio",
                           "edge/heterogeneous/words->audio"]
    out = model(batch)
    assert out.heterogeneous.representation.shape == (3, 4, 3 * 8)
    assert out.homogeneous.features.shape == out.homogeneous.dictionary.reconstruction.shape
    assert out.homogeneous.features.shape == (3, 4, 5)  # out_channels
    assert out.heterogeneous.edges.edge_index.shape == (2, 3 * 3)
    assert len([k for k in logs if k.startswith("edge/homogeneous/")]) == 12


VARIANTS = [[], ["encoder.causal=false", "encoder.pooling=attention"],
            ["dictionary.activation=sparsemax", "dictionary.atom_channels=3"]]


@pytest.mark.parametrize("variant", VARIANTS, ids=["causal", "bidirectional", "sparsemax"])
def test_padding_beyond_lengths_changes_nothing(variant):
    torch.manual_seed(0)
    model = DHMD(tiny_config(*variant)).eval()
    lengths = {"text": [7, 2, 4], "audio": [3, 5, 1], "vision": [6, 1, 6]}
    batch = make_batch(model.config, lengths)
    # Longer padding holding garbage, where the original batch has zeros.
    padded = make_batch(model.config, lengths)
    for name, x in batch.features.items():
        garbage = torch.randn(x.shape[0], 5 + x.shape[1], x.shape[2]) * 100
        valid = torch.arange(garbage.shape[1]) < batch.lengths[name].unsqueeze(1)
        garbage[:, : x.shape[1]] = torch.where(valid[:, : x.shape[1], None], x, garbage[:, : x.shape[1]])
        padded.features[name] = garbage
    with torch.no_grad():
        expected, found = outputs(model, batch), outputs(model, padded)
    for key in expected:
        torch.testing.assert_close(found[key], expected[key], atol=1e-5, rtol=1e-5, msg=key)


def test_one_sample_equals_its_prediction_in_a_batch():
    torch.manual_seed(0)
    model = DHMD(tiny_config()).eval()
    lengths = {"text": [7, 2, 4], "audio": [3, 5, 1], "vision": [6, 1, 6]}
    batch = make_batch(model.config, lengths)
    with torch.no_grad():
        together = model(batch)
        for i in range(3):
            alone = make_batch(model.config, {k: [v[i]] for k, v in lengths.items()})
            alone.features = {k: v[i : i + 1, : lengths[k][i]] for k, v in batch.features.items()}
            alone.labels = batch.labels[i : i + 1]
            single = model(alone)
            torch.testing.assert_close(single.prediction, together.prediction[i : i + 1],
                                       atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(single.heterogeneous.logits,
                                       together.heterogeneous.logits[i : i + 1],
                                       atol=1e-5, rtol=1e-5)


def test_same_seed_same_output_in_training_mode():
    batch = make_batch(tiny_config(), {"text": [5, 3], "audio": [4, 2], "vision": [3, 3]})
    results = []
    for _ in range(2):
        torch.manual_seed(3)
        model = DHMD(tiny_config("modality_dropout=0.5")).train()
        results.append(model.training_step(batch))
    for key in results[0]:
        torch.testing.assert_close(results[0][key], results[1][key], msg=key)


def test_absent_modality_does_not_affect_the_sample():
    torch.manual_seed(0)
    model = DHMD(tiny_config()).eval()
    lengths = {"text": [5, 4], "audio": [4, 3], "vision": [3, 6]}
    batch = make_batch(model.config, lengths)
    present = torch.tensor([[True, False, True], [True, True, True]])
    changed = make_batch(model.config, lengths, seed=1)
    changed.features = dict(batch.features)
    changed.features["audio"] = changed.features["audio"].clone()
    changed.features["audio"][0] = torch.randn_like(changed.features["audio"][0]) * 10
    with torch.no_grad():
        first, second = model(batch, present), model(changed, present)
        full = model(changed)
    assert torch.allclose(first.prediction[0], second.prediction[0], atol=1e-6)
    assert not torch.allclose(full.prediction[0], second.prediction[0], atol=1e-4)
    # Nothing of the absent audio reaches sample 0's other modalities in either space:
    # GD outputs, dictionary activations and reconstructions, fusion blocks.
    for name in ("homogeneous", "heterogeneous"):
        a, b = first.spaces[name], second.spaces[name]
        for x, y in ((a.features, b.features), (a.dictionary.activation, b.dictionary.activation),
                     (a.dictionary.reconstruction, b.dictionary.reconstruction)):
            torch.testing.assert_close(x[0], y[0], atol=1e-6, rtol=1e-6)
            assert (x[0, 1] == 0).all()  # the absent node's own root term is masked
        torch.testing.assert_close(a.fusion[0], b.fusion[0], atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(a.logits[0, [0, 2]], b.logits[0, [0, 2]])
        assert not torch.allclose(full.spaces[name].features[0], b.features[0])
    for edges in (first.homogeneous.edges, first.heterogeneous.edges):
        assert not ((edges.edge_index == 1).any(dim=0)).any()  # node 0*3+1 is isolated
        assert edges.edge_index.shape[1] == 2 + 6
        per_graph = torch.zeros(2).index_add_(0, edges.edge_index[1] // 3, edges.learned)
        torch.testing.assert_close(per_graph, torch.ones(2))
    terms = dhmd_objective(first, batch, model.config)
    assert all(torch.isfinite(v) for v in terms.values())


def test_absent_modality_is_masked_from_the_losses():
    torch.manual_seed(0)
    model = DHMD(tiny_config()).eval()
    lengths = {"text": [5, 4], "audio": [4, 3], "vision": [3, 6]}
    batch = make_batch(model.config, lengths)
    present = torch.tensor([[True, True, True], [True, True, False]])
    output = model(batch, present)
    loss = dhmd_objective(output, batch, model.config)["loss"]
    (grad,) = torch.autograd.grad(loss, output.decoupled.private[2])
    assert grad[1].abs().sum() == 0 and grad[0].abs().sum() > 0


def test_present_is_validated():
    model = DHMD(tiny_config())
    batch = make_batch(model.config, {"text": [3], "audio": [2], "vision": [2]})
    with pytest.raises(ValueError, match="shape"):
        model(batch, torch.ones(1, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="at least one present"):
        model(batch, torch.zeros(1, 3, dtype=torch.bool))


def test_modality_dropout_never_drops_everything():
    torch.manual_seed(0)
    model = DHMD(tiny_config("modality_dropout=0.9"))
    lengths = {"text": [3] * 16, "audio": [2] * 16, "vision": [2] * 16}
    batch = make_batch(model.config, lengths)
    present = model.train()(batch).present
    assert present.any(dim=1).all() and not present.all()
    assert model.eval()(batch).present.all()


def test_without_dictionary_there_is_no_dictionary_term():
    torch.manual_seed(0)
    with_atoms = DHMD(tiny_config())
    model = DHMD(tiny_config("dictionary.atoms=0"))
    assert all(space.dictionary is None for space in model.spaces.values())
    batch = make_batch(model.config, {"text": [5, 4], "audio": [4, 3], "vision": [3, 6]})
    logs = check_training_step(model, batch)
    assert not any(k.startswith(("ctr/", "usage/")) for k in logs)
    assert all(space.dictionary is None for space in model(batch).spaces.values())
    # The fusion blocks keep their width (the space's F); only their inputs shrink.
    assert (with_atoms.fusion_head.hidden.in_features
            == model.fusion_head.hidden.in_features == 3 * 8 + 3 * 16 + 3 * 8)
    for name in ("homogeneous", "heterogeneous"):
        wide, narrow = with_atoms.spaces[name].fusion[0], model.spaces[name].fusion[0]
        assert wide.in_features == 2 * narrow.in_features


def test_objective_total_is_the_weighted_sum():
    torch.manual_seed(0)
    config = tiny_config("dictionary.usage_weight=0.3", "dictionary.weight=0.2",
                         "loss.use_margin=true")
    model = DHMD(config).eval()
    batch = make_batch(config, {"text": [5, 4], "audio": [4, 3], "vision": [3, 6]})
    t = dhmd_objective(model(batch), batch, config)
    expected = (t["task"] + 0.1 * (t["reconstruction"] + t["cycle"])
                + 0.01 * (t["margin"] + t["orthogonality"]))
    for space in ("homogeneous", "heterogeneous"):
        # The reference's w_losses = [1, 10]: logit x 1, representation x 10.
        expected = expected + 0.05 * (t[f"gd/{space}/logit"] + 10 * t.get(f"gd/{space}/repr", 0)
                                      + 10 * t[f"gd/{space}/reg"])
        expected = expected + 0.2 * t[f"ctr/{space}"] + 0.3 * t[f"usage/{space}"]
    assert "gd/heterogeneous/repr" in t and "gd/homogeneous/repr" not in t
    torch.testing.assert_close(t["loss"], expected)


def test_margin_switch_removes_the_term_and_its_embeddings():
    torch.manual_seed(0)
    config = tiny_config()  # the default: no margin loss
    assert "margin" in dhmd_objective(DHMD(tiny_config("loss.use_margin=true")).eval()(
        make_batch(config, {"text": [5, 4], "audio": [4, 3], "vision": [3, 6]})),
        make_batch(config, {"text": [5, 4], "audio": [4, 3], "vision": [3, 6]}),
        tiny_config("loss.use_margin=true"))
    model = DHMD(config)
    batch = make_batch(config, {"text": [5, 4], "audio": [4, 3], "vision": [3, 6]})
    logs = check_training_step(model, batch)
    assert "margin" not in logs and model(batch).margin_embedding is None
    t = dhmd_objective(model.eval()(batch), batch, config)
    assert "margin" not in t
    assert torch.isfinite(t["loss"])


def test_dmd_fusion_reads_neither_gd_outputs_nor_the_dictionary():
    torch.manual_seed(0)
    model = DHMD(tiny_config("fusion=dmd")).eval()
    assert model.spaces["homogeneous"].fusion is None
    assert model.spaces["heterogeneous"].fusion[0].in_features == 16  # sigma(W g_m)
    assert model.fusion_head.hidden.in_features == 3 * 16 + 3 * 8
    batch = make_batch(model.config, {"text": [5, 4], "audio": [4, 3], "vision": [3, 6]})
    # The dictionaries still train through their contrastive loss.
    assert "ctr/homogeneous" in dhmd_objective(model(batch), batch, model.config)
    before = model(batch).prediction
    with torch.no_grad():
        for space in model.spaces.values():
            space.dictionary.atoms.add_(1.0)
            space.graph.lin_edge.weight.add_(1.0)  # changes the GD outputs, not the readout
    torch.testing.assert_close(model(batch).prediction, before)


@pytest.mark.parametrize("propagate", [True, False])
def test_gd_outputs_are_the_fused_features(propagate):
    # With propagate, the GD output is r_j + sum_i w_ij r_i (identity maps); without, r_j.
    torch.manual_seed(0)
    flag = str(propagate).lower()
    model = DHMD(tiny_config(f"homogeneous_graph.propagate={flag}",
                             f"heterogeneous_graph.propagate={flag}")).eval()
    batch = make_batch(model.config, {"text": [5, 4], "audio": [4, 3], "vision": [3, 6]})
    with torch.no_grad():
        out = model(batch)
    for space in out.spaces.values():
        r = space.representation  # (B, M, F)
        expected = r.clone()
        if propagate:
            teacher, student = space.edges.edge_index
            flat = expected.flatten(0, 1).index_add(
                0, student, space.edges.weight.unsqueeze(-1) * r.flatten(0, 1)[teacher])
            expected = flat.view_as(r)
        torch.testing.assert_close(space.features, expected)


def test_edge_weight_logs_are_learned_weights():
    torch.manual_seed(0)
    model = DHMD(tiny_config())
    batch = make_batch(model.config, {"text": [5, 4], "audio": [4, 3], "vision": [3, 6]})
    logs = model.eval().training_step(batch)
    for space in ("homogeneous", "heterogeneous"):
        weights = [v for k, v in logs.items() if k.startswith(f"edge/{space}/")]
        assert len(weights) == 6 and all(not w.requires_grad for w in weights)
        assert math.isclose(float(sum(weights)), 1.0, rel_tol=1e-5)  # 'graph' normalisation


def test_bad_batch_raises_dataset_error():
    model = DHMD(tiny_config())
    batch = make_batch(model.config, {"text": [3], "audio": [2], "vision": [2]})
    batch.features["audio"] = torch.zeros(1, 2, 7)
    with pytest.raises(DatasetError, match="audio"):
        model(batch)
    del batch.features["audio"]
    with pytest.raises(DatasetError, match="lacks a modality"):
        model(batch)


def test_modalities_and_repr():
    model = DHMD(tiny_config())
    assert model.modalities == ("text", "audio", "vision")
    assert "DHMD(modalities=['text', 'audio', 'vision']" in repr(model)


def test_an_unlabelled_batch_is_predicted_on_and_not_trained_on():
    config = tiny_config()
    model = DHMD(config).eval()
    batch = make_batch(config, {"text": [5, 3], "audio": [4, 4], "vision": [2, 6]})
    unlabelled = MultimodalBatch(batch.features, batch.lengths, None, batch.ids)
    assert len(unlabelled) == 2 and not unlabelled.labelled and batch.labelled
    torch.testing.assert_close(model.predict_step(unlabelled)[0], model.predict_step(batch)[0])
    with pytest.raises(DatasetError, match="no labels to train on"):
        model.training_step(unlabelled)
