import json
import re

import pytest
import torch

from dhmd_graph.config import (
    DHMDConfig,
    DictionaryConfig,
    EncoderConfig,
    GraphConfig,
    ModalityConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    parse_edge,
    preset,
)


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
    ("widht=3", r"unknown key 'widht'.*valid keys: \['dictionary', 'encoder'"),
    ("encoder.depth=3", r"EncoderConfig has no field 'depth'.*'num_layers'"),
    ("width=abc", "'width' expects a value of type int, found 'abc'"),
    ("encoder.causal=maybe", "'encoder.causal' expects a value of type bool"),
    ("homogeneous_graph.prior=[1]", r"expects a value of type dict \(as JSON\)"),
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
])
def test_from_dict_refuses_values_of_the_wrong_type(section, key, value, message):
    data = config_to_dict(preset("mosi"))
    (data if section is None else data[section])[key] = value
    with pytest.raises(ValueError, match=re.escape(message)):
        config_from_dict(data)
