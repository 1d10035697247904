"""The benchmark harnesses: helpers, the layer agreement check, and every script's
``--quick`` mode. Harness correctness only: no assertion on a timing."""

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def load():
    """Imports a benchmark script by name, as ``python benchmarks/<name>.py`` would."""
    sys.path.insert(0, str(BENCHMARKS))
    before = set(sys.modules)

    def _load(name):
        if name not in sys.modules:
            spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        return sys.modules[name]

    yield _load
    sys.path.remove(str(BENCHMARKS))
    for name in ("common", "layer", "train_step", "scale", "scaling_curves", "dmd_ablation",
                 "dmd_reference_speed", "hmd_ablation", "gpu", "small_data"):
        if name not in before:
            sys.modules.pop(name, None)


def _written(tmp_path, name):
    payload = json.loads((tmp_path / f"{name}.json").read_text())
    assert payload["command"].startswith("python ")
    assert payload["machine"]["torch"] == torch.__version__
    assert payload["machine"]["logical_cpus"] >= 1
    assert payload["rows"]
    return payload


def test_timing_statistics(load):
    common = load("common")
    timing = common.Timing.from_runs([5.0, 1.0, 3.0, 2.0, 4.0], number=1)
    assert timing.median == 3.0
    assert (timing.q25, timing.q75, timing.iqr) == (2.0, 4.0, 2.0)

    calls = []
    result = common.time_function(lambda: calls.append(1), warmup=2, repeats=3,
                                  min_run_time=0.0)
    assert len(result.runs) == 3 and result.number >= 1
    assert len(calls) == 2 + 1 + 3 * result.number  # warm-up, calibration, runs

    first, second, ratio = common.time_pair(lambda: None, lambda: None, repeats=4,
                                            min_run_time=0.0)
    assert len(ratio.runs) == 4
    assert ratio.runs == [a / b for a, b in zip(first.runs, second.runs, strict=True)]

    order = []
    timings, ratios = common.time_interleaved(
        [lambda: order.append("a"), lambda: order.append("b"), lambda: order.append("c")],
        warmup=1, repeats=2, min_run_time=0.0)
    assert order == ["a", "b", "c"] * 4  # warm-up, one calibration call each, 2 runs in turn
    assert len(timings) == 3 and ratios[-1].runs == [1.0, 1.0]


def test_peak_tensor_memory_counts_temporaries(load):
    common = load("common")
    size = 1_000_000

    def temporary():
        x = torch.ones(size)  # 4 MB, freed on return
        return float(x.sum())

    assert common.peak_tensor_memory(temporary) >= 4 * size
    kept = torch.ones(size)
    assert common.peak_tensor_memory(lambda: kept.add_(1)) < 4 * size  # in place: nothing new


def test_layer_dense_reference_agrees_and_detects_a_difference(load):
    layer = load("layer")
    module = layer.make_layer(3, 1, 6, 4)
    logits, reprs = layer.make_inputs(5, 3, 1, 6)
    assert layer.check_agreement(module, logits, reprs, 3) < 1e-5
    # The dense version implements the reference 'graph' softmax only: another
    # normalisation must be caught.
    module.normalize = "target"
    with pytest.raises(AssertionError, match="differ"):
        layer.check_agreement(module, logits, reprs, 3)


def test_layer_quick(load, tmp_path):
    rows = load("layer").main(["--quick", "--output-dir", str(tmp_path)])
    assert {(row["M"], row["B"]) for row in rows} == {(2, 16), (2, 64), (3, 16), (3, 64)}
    assert all(row["edges"] == row["B"] * row["M"] * (row["M"] - 1) for row in rows)
    assert all(row["pyg_peak_mib"] > 0 and row["dense_peak_mib"] > 0 for row in rows)
    payload = _written(tmp_path, "layer_quick")
    assert payload["summary"]["target_ratio_met"] is None  # no B >= 256 in quick mode


def test_train_step_quick(load, tmp_path):
    rows = load("train_step").main(["--quick", "--profile", "--alignment", "unaligned",
                                    "--output-dir", str(tmp_path)])
    (row,) = rows
    assert (row["preset"], row["aligned"], row["target_train"]) == ("mosei", False, 3.0)
    assert row["train_samples_per_s"] > 0 and row["latency_b1_ms"] > 0
    profile = _written(tmp_path, "train_step_quick")["profiles"]["mosei_unaligned"]
    assert {p["phase"] for p in profile["phases"]} == {"forward", "objective", "backward",
                                                       "optimizer"}
    modules = {m["module"] for m in profile["modules_forward"]}
    assert {"cross_modal", "spaces.homogeneous", "spaces.heterogeneous", "fusion_head"} <= modules
    assert all(0 <= m["share_of_forward"] <= 1 for m in profile["modules_forward"])


def test_scaling_curves_quick(load, tmp_path):
    sweeps = load("scaling_curves").main(["--quick", "--output-dir", str(tmp_path)])
    assert [row["modalities"] for row in sweeps["modalities"]] == [2, 3]
    assert [row["edges"] for row in sweeps["modalities"]] == [2, 6]
    assert (tmp_path / "scaling_curves.png").stat().st_size > 0
    assert len(_written(tmp_path, "scaling_curves_quick")["rows"]) == 6


def test_scale_quick(load, tmp_path):
    (row,) = load("scale").main(["--quick", "--workdir", str(tmp_path / "work"),
                                 "--output-dir", str(tmp_path)])
    assert row["samples"] == "32/8/8" and not row["extrapolated"]
    assert row["peak_rss_mib"] >= row["after_import_rss_mib"] > 0
    assert row["peak_anon_mib"] > 0
    assert row["epoch_s"] == pytest.approx(row["train_epoch_s"] + row["valid_epoch_s"])
    assert not list((tmp_path / "work").glob("*.pkl"))  # the pickle is deleted
    _written(tmp_path, "scale_quick")


def test_dmd_ablation_switches_cover_the_reference(load):
    # Every switch set to the reference's behaviour gives the dmd preset's switches (its
    # dropouts are MOSEI's); none of the reference arms is a no-op.
    from dhmd_graph.config import apply_overrides
    from dhmd_graph.presets import preset

    ablation = load("dmd_ablation")
    ours = apply_overrides(preset("mosei", aligned=True), list(ablation.BASE_OVERRIDES))
    every = [o for switch in ablation.SWITCHES.values() for o in switch.reference]
    changed = apply_overrides(ours, every)
    dmd = preset("mosei", aligned=True, reference="dmd")
    for field in ("pooling", "positional_encoding", "homogeneous_head", "cross_modal_norm",
                  "causal_alignment", "attention_dropout"):
        assert getattr(changed.encoder, field) == getattr(dmd.encoder, field), field
    for mine, theirs in zip(changed.modalities, dmd.modalities, strict=True):
        assert (mine.sequence_length, mine.length_mask, mine.input_dropout,
                mine.attention_dropout) == (theirs.sequence_length, theirs.length_mask,
                                            theirs.input_dropout, theirs.attention_dropout)
    assert changed.loss == dmd.loss
    assert changed.heterogeneous_graph.repr_reduction == dmd.heterogeneous_graph.repr_reduction
    for name, switch in ablation.SWITCHES.items():
        assert (apply_overrides(ours, list(switch.reference)) != ours
                or switch.reference_train), name
    assert dict(ablation.SWITCHES["accumulation"].reference_train) == {"accumulation": "summed"}
    arms = ablation.arms(["readout", "accumulation"])
    assert [(a[0], a[1]) for a in arms] == [("-", "ours"), ("readout", "reference"),
                                            ("accumulation", "ours"),
                                            ("accumulation", "reference")]


def test_dmd_ablation_quick(load, tmp_path, monkeypatch):
    monkeypatch.setenv("DHMD_CACHE", str(tmp_path / "cache"))
    ablation = load("dmd_ablation")
    rows = ablation.main(["--quick", "--switches", "accumulation", "--output-dir", str(tmp_path)])
    # The switch has a schedule of its own: ours on it, then the reference behaviour.
    assert [(row["switch"], row["behaviour"]) for row in rows] == [
        ("accumulation", "ours"), ("accumulation", "reference")]
    assert rows[0]["train"] == {"batch_size": 16, "accumulation_steps": 2}
    assert rows[1]["train"] == {"batch_size": 16, "accumulation_steps": 2,
                                "accumulation": "summed"}
    assert rows[1]["delta_vs_ours"]["MAE"] == pytest.approx(
        rows[1]["mean"]["MAE"] - rows[0]["mean"]["MAE"])
    assert all(set(row["mean"]) >= {"MAE", "Corr", "Non0_acc_2", "Mult_acc_7"} for row in rows)
    settings = _written(tmp_path, "dmd_ablation_quick")["settings"]
    assert settings["switches"] == ["accumulation"]
    base = list(ablation.BASE_OVERRIDES)
    assert settings["base"].startswith(f"preset('mosei', aligned=True) + {base}")
    with pytest.raises(SystemExit):
        load("dmd_ablation").main(["--quick", "--switches", "nonsense"])


def test_hmd_ablation_arms_change_what_they_name(load):
    from dhmd_graph.config import apply_overrides
    from dhmd_graph.presets import preset

    ablation = load("hmd_ablation")
    base = preset("mosei", aligned=True)
    assert set(ablation.ARMS) == {"full", "no_dictionary", "gd_loss_only", "no_contrastive",
                                  "no_distillation", "text_only", "margin"}
    configs = {arm: apply_overrides(base, list(o)) for arm, o in ablation.ARMS.items()}
    assert configs["full"] == base and configs["text_only"] == base
    dmd = preset("mosei", aligned=True, reference="dmd")
    assert (configs["no_dictionary"].fusion, configs["no_dictionary"].dictionary.atoms) == (
        dmd.fusion, dmd.dictionary.atoms)
    assert not any(g.propagate for g in configs["gd_loss_only"].graphs.values())
    assert configs["no_contrastive"].dictionary.weight == 0
    assert all(g.weight == 0 for g in configs["no_distillation"].graphs.values())
    assert configs["margin"].loss.use_margin and not base.loss.use_margin
    assert type(ablation.build("text_only", base)).__name__ == "TextOnlyDHMD"


def test_hmd_ablation_quick(load, tmp_path, monkeypatch):
    monkeypatch.setenv("DHMD_CACHE", str(tmp_path / "cache"))
    rows = load("hmd_ablation").main(["--quick", "--arms", "full,text_only,no_dictionary",
                                      "--output-dir", str(tmp_path)])
    assert [row["arm"] for row in rows] == ["full", "text_only", "no_dictionary"]
    assert all(set(row["mean"]) >= {"MAE", "Corr", "Non0_acc_2", "Mult_acc_7"} for row in rows)
    assert rows[1]["delta_vs_full"]["MAE"] == pytest.approx(
        rows[1]["mean"]["MAE"] - rows[0]["mean"]["MAE"])
    assert _written(tmp_path, "hmd_ablation_quick")["settings"]["arms"] == [
        "full", "text_only", "no_dictionary"]
    with pytest.raises(SystemExit):
        load("hmd_ablation").main(["--quick", "--arms", "nonsense"])


def test_dmd_reference_speed_needs_a_checkout(load, tmp_path):
    with pytest.raises(SystemExit, match="not a checkout of mdswyz/DMD"):
        load("dmd_reference_speed").main(["--dmd-src", str(tmp_path), "--quick"])


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("DMD_SRC"),
                    reason="set DMD_SRC to a checkout of https://github.com/mdswyz/DMD")
@pytest.mark.parametrize(("name", "aligned"), [("mosi", True), ("mosei", False)])
def test_dmd_preset_equals_the_reference_code(load, name, aligned):
    # The reference's own modules, its weights copied into our dmd preset: one batch with
    # padding in float64 agrees up to the reference's float32 position table and prior.
    harness = load("dmd_reference_speed")
    train_step = load("train_step")
    reference = harness.load_reference(Path(os.environ["DMD_SRC"]))
    check = harness.parity(reference, name, aligned, True, train_step.LENGTHS[(name, aligned)])
    assert check["counts"]["reference"] - check["counts"]["unused"] == check["counts"]["ours"]
    assert max(check["max_abs_difference"].values()) < 1e-6, check["max_abs_difference"]


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("DMD_SRC"),
                    reason="set DMD_SRC to a checkout of https://github.com/mdswyz/DMD")
def test_dmd_reference_speed_quick(load, tmp_path):
    (row,) = load("dmd_reference_speed").main(["--dmd-src", os.environ["DMD_SRC"], "--quick",
                                                "--output-dir", str(tmp_path)])
    for model in ("full", "dmd", "reference"):
        assert row[f"{model}_samples_per_s"] > 0 and row[f"{model}_latency_ms"] > 0
    assert row["full_speedup"] > 0 and row["dmd_latency_ratio"] > 0
    assert "mosi_aligned" in _written(tmp_path, "dmd_reference_speed_quick")["parity"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_gpu_benchmark_without_cuda_measures_nothing(load, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        load("gpu").main(["--quick", "--output-dir", str(tmp_path)])
    assert exit_info.value.code == 1
    assert "no CUDA device on this machine; nothing measured" in capsys.readouterr().out
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_small_data_quick(load, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DHMD_CACHE", str(tmp_path / "cache"))
    load("small_data").main(["--quick", "--output-dir", str(tmp_path)])
    payload = _written(tmp_path, "small_data_quick")
    models = [row["model"] for row in payload["rows"]]
    assert models == ["DHMD (recipe)", "DHMD (sequence)", "mean baseline", "ridge baseline"]
    assert set(payload["verdicts"]) == {"recipe", "sequence"}
    assert all(len(row["best_epochs"].split("/")) == 3 for row in payload["rows"][:2])
    assert "recipe: DHMD " in capsys.readouterr().out
    assert payload["report"].count("| DHMD (") == 2 and "| sequence | DHMD " in payload["report"]
