import json
import re
import typing

import pytest
import torch

from dhmd_graph import config as config_module
from dhmd_graph import losses
from dhmd_graph.config import (
    DHMDConfig,
    DictionaryConfig,
    EncoderConfig,
    GraphConfig,
    LossConfig,
    ModalityConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    parse_edge,
)
from dhmd_graph.nn import dictionary, distill, encoders, masking, transformer
from dhmd_graph.presets import preset
from dhmd_graph.train import TrainConfig


def custom_config() -> DHMDConfig:
    return DHMDConfig(
        modalities=[ModalityConfig("words", None, kernel_size=2, vocab_size=100),
                    ModalityConfig("audio", 74), ModalityConfig("vision", 35, kernel_size=3),
                    ModalityConfig("eeg", 8)],
        width=12, num_heads=3,
    )


@pytest.mark.parametrize(("name", "aligned", "width", "heads", "kernels", "dims"), [
    ("mosi", True, 50, 10, [5, 5, 5], [768, 5, 20]),
    ("mosei", False, 30, 6, [5, 1, 3], [768, 74, 35]),
    ("sims", False, 50, 10, [3, 3, 3], [768, 33, 709]),
])
def test_presets(name, aligned, width, heads, kernels, dims):
    config = preset(name, aligned)
    assert config.modality_names == ["text", "audio", "vision"]
    assert (config.width, config.num_heads) == (width, heads)
    assert [m.kernel_size for m in config.modalities] == kernels
    assert [m.input_dim for m in config.modalities] == dims
    assert config.encoder.num_layers == config.encoder.memory_layers == 4
    assert config.homogeneous_graph.hidden_channels == 64
    assert config.heterogeneous_graph.hidden_channels == 32
    assert not config.homogeneous_graph.use_repr_term
    assert config.heterogeneous_graph.repr_metric == "positive_cosine"


def _prior_weights(config: DHMDConfig, space: str) -> dict[str, float]:
    matrix = torch.tensor(config.prior_matrix(space))
    names = config.modality_names
    pairs = [(t, s) for t in range(3) for s in range(3) if t != s]
    weights = torch.softmax(torch.stack([matrix[t, s] for t, s in pairs]) / 0.25, dim=0)
    return {f"{names[t]}->{names[s]}": float(w) for (t, s), w in zip(pairs, weights, strict=True)}


def test_reference_priors_give_the_reference_weights():
    config = preset("mosi")
    homogeneous = _prior_weights(config, "homogeneous")
    assert homogeneous["text->vision"] == pytest.approx(0.482, abs=1e-3)
    assert homogeneous["text->audio"] == pytest.approx(0.482, abs=1e-3)
    assert homogeneous["audio->text"] == pytest.approx(0.0088, abs=1e-4)
    heterogeneous = _prior_weights(config, "heterogeneous")
    for edge in ("text->vision", "text->audio", "vision->audio"):
        assert heterogeneous[edge] == pytest.approx(0.327, abs=1e-3)
    assert heterogeneous["audio->vision"] == pytest.approx(0.006, abs=1e-3)


def test_preset_errors():
    with pytest.raises(ValueError, match="only unaligned"):
        preset("sims")
    with pytest.raises(ValueError, match="'iemocap'"):
        preset("iemocap")


def test_custom_config_defaults():
    config = custom_config()
    assert config.homogeneous_graph.prior is None and config.heterogeneous_graph.prior is None
    assert config.prior_matrix("homogeneous") is None
    assert config.edge_pairs("heterogeneous") is None
    pruned = apply_overrides(config, ['homogeneous_graph.edges=["words->eeg", "eeg->audio"]'])
    assert pruned.edge_pairs("homogeneous") == [(0, 3), (3, 1)]


@pytest.mark.parametrize("config", [preset("mosei"), custom_config()], ids=["preset", "custom"])
def test_dict_round_trip_through_json(config):
    data = json.loads(json.dumps(config_to_dict(config)))
    assert config_from_dict(data) == config


def test_from_dict_rejects_unknown_keys():
    data = config_to_dict(preset("mosi"))
    data["encoder"]["layers"] = 3
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['layers'\] in encoder.*num_layers"):
        config_from_dict(data)
    with pytest.raises(ValueError, match=r"modalities.1 lacks the required key\(s\) \['name'\]"):
        config_from_dict({"modalities": [{"name": "a", "input_dim": 2}, {"input_dim": 3}]})
    assert config_from_dict({"modalities": [{"name": "a", "input_dim": 2},
                                            {"name": "b", "input_dim": 3}]}).width == 50


def test_overrides_convert_types():
    base = custom_config()
    config = apply_overrides(base, [
        "width=40", "num_heads=8",  # validated together, not one at a time
        "homogeneous_graph.temperature=4",
        "encoder.causal=false",
        "dictionary.atoms=0",
        'heterogeneous_graph.prior={"words->audio": 2}',
        "modalities.audio.kernel_size=3",
        "modalities.0.vocab_size=50",
        "heterogeneous_graph.edges=none",
    ])
    assert (config.width, config.num_heads) == (40, 8)
    assert config.homogeneous_graph.temperature == 4.0
    assert config.encoder.causal is False
    assert config.dictionary.atoms == 0
    assert config.heterogeneous_graph.prior == {"words->audio": 2}
    assert config.modalities[1].kernel_size == 3 and config.modalities[0].vocab_size == 50
    replaced = apply_overrides(base, [
        'modalities=[{"name": "a", "input_dim": 2}, {"name": "b", "input_dim": 3}]',
        "modalities.b.kernel_size=2",
    ])
    assert [(m.name, m.kernel_size) for m in replaced.modalities] == [("a", 1), ("b", 2)]
    assert base.width == 12 and base.modalities[1].kernel_size == 1  # not modified


@pytest.mark.parametrize(("override", "message"), [
    ("widht=3", r"unknown key 'widht'.*valid keys: \['class_names', 'class_weights', 'dictionary', 'encoder'"),
    ("encoder.depth=3", r"EncoderConfig has no field 'depth'.*'num_layers'"),
    ("width=abc", "DHMDConfig.width: expected a value of type int, found 'abc'"),
    ("encoder.causal=maybe", "DHMDConfig.encoder.causal: expected a value of type bool"),
    ("homogeneous_graph.prior=[1]", r"expected a value of type dict \(as JSON\)"),
    ("modalities.speech.kernel_size=3", r"'speech' is not an entry.*\['words', 'audio'"),
    ("modalities.audio=3", "add a field"),
    ("width.x=1", "has no sub-keys"),
    ("width", "expected 'key=value'"),
    ("num_heads=5", r"DHMDConfig.num_heads: expected a divisor of width=12, found 5"),
])
def test_override_errors(override, message):
    with pytest.raises(ValueError, match=message):
        apply_overrides(custom_config(), [override])


@pytest.mark.parametrize(("build", "field"), [
    (lambda: EncoderConfig(dropout=1.0), "EncoderConfig.dropout"),
    (lambda: EncoderConfig(pooling="sum"), "EncoderConfig.pooling"),
    (lambda: EncoderConfig(num_layers=0), "EncoderConfig.num_layers"),
    (lambda: GraphConfig(normalize="node"), "GraphConfig.normalize"),
    (lambda: GraphConfig(temperature=0.0), "GraphConfig.temperature"),
    (lambda: GraphConfig(repr_metric="dot"), "GraphConfig.repr_metric"),
    (lambda: GraphConfig(weight=-1.0), "GraphConfig.weight"),
    (lambda: GraphConfig(prior={"text->audio": float("nan")}), "GraphConfig.prior"),
    (lambda: GraphConfig(edges=["text->audio", "text->audio"]), "GraphConfig.edges"),
    (lambda: DictionaryConfig(atoms=-1), "DictionaryConfig.atoms"),
    (lambda: DictionaryConfig(activation="relu"), "DictionaryConfig.activation"),
    (lambda: DictionaryConfig(atom_channels=0), "DictionaryConfig.atom_channels"),
    (lambda: DictionaryConfig(contrastive_temperature=0.0),
     "DictionaryConfig.contrastive_temperature"),
    (lambda: GraphConfig(out_channels=0), "GraphConfig.out_channels"),
    (lambda: GraphConfig(propagate="yes"), "GraphConfig.propagate"),
    (lambda: LossConfig(use_margin=1), "LossConfig.use_margin"),
    (lambda: DHMDConfig([ModalityConfig("a", 3), ModalityConfig("b", 3)], fusion="sum"),
     "DHMDConfig.fusion"),
    (lambda: ModalityConfig("text", None), "ModalityConfig.vocab_size"),
    (lambda: ModalityConfig("a->b", 3), "ModalityConfig.name"),
    (lambda: ModalityConfig("text", 3, kernel_size=0), "ModalityConfig.kernel_size"),
    (lambda: DHMDConfig([ModalityConfig("text", 3)]), "DHMDConfig.modalities"),
    (lambda: DHMDConfig([ModalityConfig("a", 3), ModalityConfig("a", 3)]), "unique names"),
    (lambda: DHMDConfig([ModalityConfig("a", 3), ModalityConfig("b", 3)], modality_dropout=1.0),
     "DHMDConfig.modality_dropout"),
    (lambda: DHMDConfig([ModalityConfig("a", 3), ModalityConfig("b", 3)],
                        homogeneous_graph=GraphConfig(prior={"a->c": 1.0})),
     "DHMDConfig.homogeneous_graph.prior"),
    (lambda: DHMDConfig([ModalityConfig("a", 3), ModalityConfig("b", 3)],
                        heterogeneous_graph=GraphConfig(edges=["a->a"])),
     "DHMDConfig.heterogeneous_graph.edges"),
])
def test_validation_names_the_field(build, field):
    with pytest.raises(ValueError, match=field):
        build()


def test_parse_edge():
    assert parse_edge("text->audio") == ("text", "audio")
    for bad in ("text", "->audio", "a->b->c"):
        with pytest.raises(ValueError, match="teacher->student"):
            parse_edge(bad)


@pytest.mark.parametrize("section, key, value, message", [
    (None, "width", "8", "DHMDConfig.width: expected an integer, found '8'"),
    (None, "width", True, "DHMDConfig.width: expected an integer, found True"),
    (None, "modality_dropout", False, "DHMDConfig.modality_dropout: expected a number"),
    ("encoder", "causal", "false", "EncoderConfig.causal: expected true or false"),
    ("homogeneous_graph", "use_repr_term", 0, "GraphConfig.use_repr_term: expected true"),
    ("homogeneous_graph", "prior", [1, 2], "GraphConfig.prior: expected an object of numbers"),
    ("homogeneous_graph", "edges", "text->audio", "GraphConfig.edges: expected a list of"),
    ("dictionary", "atoms", 4.0, "DictionaryConfig.atoms: expected an integer"),
    ("loss", "task", "1", "LossConfig.task: expected a number"),
    ("encoder", "pooling", 3, "EncoderConfig.pooling: expected a string, found 3"),
    ("loss", "margin_reduction", None, "LossConfig.margin_reduction: expected a string"),
    ("heterogeneous_graph", "repr_weight", "10", "GraphConfig.repr_weight: expected a number"),
])
def test_from_dict_refuses_values_of_the_wrong_type(section, key, value, message):
    data = config_to_dict(preset("mosi"))
    (data if section is None else data[section])[key] = value
    with pytest.raises(ValueError, match=re.escape(message)):
        config_from_dict(data)


@pytest.mark.parametrize(("name", "aligned", "lengths", "text_dropout", "attention"), [
    ("mosi", True, [50, 50, 50], 0.5, [None, 0.2, 0.0]),
    ("mosi", False, [50, 375, 500], 0.5, [None, 0.2, 0.0]),
    ("mosei", True, [50, 50, 50], 0.3, [None, 0.0, 0.0]),
    ("mosei", False, [50, 500, 500], 0.3, [None, 0.0, 0.0]),
])
def test_dmd_presets_set_every_reference_switch(name, aligned, lengths, text_dropout, attention):
    config = preset(name, aligned, reference="dmd")
    ours = preset(name, aligned)
    # The architecture of our preset; only the switches and dropouts differ.
    assert (config.width, config.num_heads) == (ours.width, ours.num_heads)
    assert [m.kernel_size for m in config.modalities] == [m.kernel_size for m in ours.modalities]
    assert [m.sequence_length for m in config.modalities] == lengths
    assert [m.length_mask for m in config.modalities] == [False] * 3
    assert [m.input_dropout for m in config.modalities] == [text_dropout, 0.0, 0.0]
    assert [m.attention_dropout for m in config.modalities] == attention
    encoder = config.encoder
    assert encoder.attention_dropout == {"mosi": 0.3, "mosei": 0.4}[name]
    assert (encoder.dropout, encoder.output_dropout) == (0.0, 0.5)
    assert encoder.embed_dropout == {"mosi": 0.2, "mosei": 0.0}[name]
    assert (encoder.pooling, encoder.positional_encoding, encoder.homogeneous_head,
            encoder.cross_modal_norm, encoder.causal_alignment) == (
        "last", "fairseq", "flatten", "shared", "shifted")
    assert config.heterogeneous_graph.repr_reduction == "batch_means"
    assert config.homogeneous_graph.repr_reduction == "per_sample"  # its term is off anyway
    for graph in (config.homogeneous_graph, config.heterogeneous_graph):
        assert (graph.logit_weight, graph.repr_weight, graph.weight) == (1.0, 10.0, 0.05)
    assert not config.homogeneous_graph.use_repr_term
    assert (config.loss.margin_embedding, config.loss.margin_reduction) == ("flatten", "anchor")
    assert config.dictionary.atoms == 0 and config.modality_dropout == 0.0
    assert config.fusion == "dmd" and config.loss.use_margin
    assert not config.homogeneous_graph.propagate and not config.heterogeneous_graph.propagate
    for graph in config.graphs.values():  # the reference's additive scorer on readouts
        assert (graph.scorer, graph.scorer_input, graph.edge_target, graph.loss_trains_weights,
                graph.prior_schedule) == ("additive", "readout", "none", True, "constant")
    assert config.prior_matrix("heterogeneous") == ours.prior_matrix("heterogeneous")
    assert config_from_dict(json.loads(json.dumps(config_to_dict(config)))) == config


def test_our_presets_keep_our_defaults():
    # Ours where the switch ablation kept them; the reference's margin averaging, which
    # it handed to the reference (docs/guide/dmd.md).
    config = preset("mosi")
    assert config.encoder == EncoderConfig()
    assert all(m.sequence_length is None and m.length_mask and m.input_dropout == 0.0
               and m.attention_dropout is None for m in config.modalities)
    assert config.heterogeneous_graph.repr_reduction == "per_sample"
    assert (config.loss.margin_embedding, config.loss.margin_reduction) == ("pooled", "anchor")
    assert TrainConfig().accumulation == "averaged"
    for graph in config.graphs.values():  # the routing switches (docs/guide/model.md)
        assert (graph.scorer, graph.scorer_input, graph.edge_target, graph.loss_trains_weights,
                graph.prior_schedule) == ("pairwise", "statistics", "teacher_error", False,
                                          "linear")
    assert (config.dictionary.contrastive_input, config.dictionary.contrastive_positives,
            config.dictionary.contrastive_cross_modal) == ("representation", "label",
                                                          "homogeneous")


@pytest.mark.parametrize(("name", "aligned"), [("mosi", True), ("mosei", False), ("sims", False)])
def test_our_presets_build_the_published_structure(name, aligned):
    config = preset(name, aligned)
    assert config.fusion == "dhmd" and config.dictionary.atoms > 0
    assert config.dictionary.weight > 0  # the contrastive loss is on
    for graph in config.graphs.values():
        assert graph.propagate and graph.root_weight and not graph.detach_teacher
    assert not config.loss.use_margin  # not in the figure; no effect in the ablation


def test_reference_preset_errors():
    with pytest.raises(ValueError, match="reference must be None or one of"):
        preset("sims", aligned=False, reference="dmd")
    with pytest.raises(ValueError, match="reference='mult'"):
        preset("mosi", reference="mult")


@pytest.mark.parametrize(("build", "field"), [
    (lambda: EncoderConfig(positional_encoding="learned"), "EncoderConfig.positional_encoding"),
    (lambda: EncoderConfig(homogeneous_head="mlp"), "EncoderConfig.homogeneous_head"),
    (lambda: EncoderConfig(cross_modal_norm="none"), "EncoderConfig.cross_modal_norm"),
    (lambda: EncoderConfig(causal_alignment="left"), "EncoderConfig.causal_alignment"),
    (lambda: GraphConfig(repr_reduction="sum"), "GraphConfig.repr_reduction"),
    (lambda: GraphConfig(repr_weight=-1.0), "GraphConfig.repr_weight"),
    (lambda: LossConfig(margin_embedding="flat"), "LossConfig.margin_embedding"),
    (lambda: LossConfig(margin_reduction="mean"), "LossConfig.margin_reduction"),
    (lambda: ModalityConfig("text", 3, kernel_size=5, sequence_length=4),
     "ModalityConfig.sequence_length"),
    (lambda: ModalityConfig("text", 3, input_dropout=1.0), "ModalityConfig.input_dropout"),
    (lambda: ModalityConfig("text", 3, attention_dropout=-0.1),
     "ModalityConfig.attention_dropout"),
    (lambda: ModalityConfig("text", 3, length_mask="no"), "ModalityConfig.length_mask"),
    (lambda: DHMDConfig([ModalityConfig("a", 3, sequence_length=5), ModalityConfig("b", 3)],
                        encoder=EncoderConfig(homogeneous_head="flatten")),
     r"DHMDConfig.modalities: expected a sequence_length .* have none, found \['b'\]"),
    (lambda: DHMDConfig([ModalityConfig("a", 3), ModalityConfig("b", 3)], width=2, num_heads=1,
                        encoder=EncoderConfig(positional_encoding="fairseq")),
     "DHMDConfig.width"),
])
def test_reference_switches_are_validated(build, field):
    with pytest.raises(ValueError, match=field):
        build()


def test_switches_from_overrides():
    config = apply_overrides(preset("mosi"), [
        "modalities.text.sequence_length=50", "modalities.audio.sequence_length=50",
        "modalities.vision.sequence_length=50", "modalities.text.length_mask=false",
        "modalities.audio.attention_dropout=0.2", "encoder.homogeneous_head=flatten",
        "heterogeneous_graph.repr_reduction=batch_means", "loss.margin_reduction=anchor"])
    assert config.modalities[0].projected_length == 46
    assert not config.modalities[0].length_mask
    assert config.modalities[1].attention_dropout == 0.2
    assert config.encoder.homogeneous_head == "flatten"
    assert apply_overrides(config, ["modalities.audio.attention_dropout=none"]
                           ).modalities[1].attention_dropout is None


def test_choice_lists_are_defined_once_beside_their_layers():
    owners = {
        "POOLINGS": (masking, "Pooling"),
        "CAUSAL_ALIGNMENTS": (masking, "CausalAlignment"),
        "POSITIONAL_ENCODINGS": (transformer, "PositionalEncoding"),
        "CROSS_MODAL_NORMS": (transformer, "CrossModalNorm"),
        "HOMOGENEOUS_HEADS": (encoders, "HomogeneousHead"),
        "NORMALIZATIONS": (distill, "Normalization"),
        "ACTIVATIONS": (dictionary, "Activation"),
        "METRICS": (losses, "Metric"),
        "LOGIT_METRICS": (losses, "LogitMetric"),
        "REPR_REDUCTIONS": (losses, "ReprReduction"),
        "MARGIN_REDUCTIONS": (losses, "MarginReduction"),
    }
    for name, (module, literal) in owners.items():
        assert getattr(config_module, name) is getattr(module, name), name
        assert getattr(module, name) == typing.get_args(getattr(module, literal)), name
    assert set(losses.LOGIT_METRICS) == set(losses.DISTANCES)
