"""Choosing the epoch and thresholds on stethoscopes the weights never heard
(``icbhi_role = "select"``, models/device_select.py)."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from steth.models.benchmark import trained_on_icbhi_train
from steth.models.data import IGNORE, Sample, build_sample_set
from steth.models.datasets import load_icbhi
from steth.models.device_select import (
    SELECTION_FILE,
    averaged_state,
    best_calibration,
    candidates,
    kept_epochs,
    objective,
    refresh_batchnorm,
    select,
)
from steth.models.export import export_run, fit_temperatures, training_data_text, twin_agreement
from steth.models.folds import ALL_ICBHI, build_folds
from steth.models.lodo import fold_dir
from steth.models.nets import BreathNet
from steth.models.seeds import exported_validation
from steth.models.train import load_data, predict_logits, run_dir, train, training_recordings
from steth.models.zoo import build_net

from .test_training import tiny_config


def icbhi_sample(crackle: int, wheeze: int) -> Sample:
    return Sample(0, 0, 10, crackle, wheeze, IGNORE, 0)


def test_the_objective_weighs_both_scores_alike_and_falls_back_to_sprsound():
    assert objective(0.8, 0.4) == pytest.approx(0.6)
    assert objective(0.8, None) == 0.8


def test_the_thresholds_follow_the_unheard_device_when_sprsound_cannot_tell():
    # SPRSound holds no event here (its Score is 0 under every threshold), so only the ICBHI
    # cycles decide: crackles score 0.7 and normals 0.6 on the crackle head, which only a
    # threshold between them separates.
    icbhi = [icbhi_sample(1, 0)] * 5 + [icbhi_sample(0, 0)] * 5
    p_crackle = np.array([0.7] * 5 + [0.6] * 5)
    logit = np.log(p_crackle / (1 - p_crackle))
    icbhi_logits = {"findings": np.stack([logit, np.full(10, -5.0)], axis=1),
                    "subtype": np.zeros((10, 7)), "quality": np.full(10, -5.0)}
    empty = {"findings": np.zeros((0, 2)), "subtype": np.zeros((0, 7)),
             "quality": np.zeros(0)}
    value, th, _, icbhi_score = best_calibration([], empty, icbhi, icbhi_logits, {})
    assert 0.6 < th["crackle"] <= 0.7
    assert icbhi_score == pytest.approx(1.0)
    assert value == pytest.approx(0.5)


def test_a_select_recipe_trains_on_sprsound_alone_in_one_run_for_every_fold(shared_data):
    cfg = tiny_config(icbhi_role="select", max_recordings=0)
    folds = build_folds(load_icbhi(shared_data, "train"))
    train_recs, val_recs = training_recordings(cfg, shared_data)
    assert {r.dataset for r in train_recs + val_recs} == {"sprsound"}
    runs = {run_dir(dataclasses.replace(cfg, hold_out_device=f.held_out)) for f in folds}
    assert len(runs) == 1
    outputs = {fold_dir(dataclasses.replace(cfg, hold_out_device=f.held_out)) for f in folds}
    assert len(outputs) == len(folds)
    assert not outputs & runs


def test_an_unknown_icbhi_role_is_refused():
    with pytest.raises(ValueError, match="icbhi_role"):
        tiny_config(icbhi_role="both")


def test_a_run_without_kept_epochs_cannot_be_selected(shared_data, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "history.json").write_text(json.dumps([{"epoch": 1}]))
    with pytest.raises(FileNotFoundError, match="keep_epochs"):
        kept_epochs(run)


def test_candidates_are_every_epoch_then_averages_of_the_last_ones():
    found = candidates([1, 2, 3, 4], max_average=3)
    assert [c.epochs for c in found] == [(1,), (2,), (3,), (4,), (3, 4), (2, 3, 4)]
    assert found[-1].label == "mean of epochs 2-4"
    assert [c.epochs for c in candidates([1, 2], max_average=5)] == [(1,), (2,), (1, 2)]


def test_an_average_of_states_is_their_element_wise_mean(tmp_path):
    paths = []
    for i, value in enumerate((1.0, 3.0)):
        path = tmp_path / f"e{i}.pt"
        torch.save({"w": torch.full((2,), value), "n": torch.tensor(i)}, path)
        paths.append(path)
    mean = averaged_state(paths)
    assert torch.equal(mean["w"], torch.full((2,), 2.0))
    assert int(mean["n"]) == 1  # integer buffers come from the last state


def test_selection_picks_a_candidate_on_held_in_devices_and_the_export_uses_it(
        shared_data, tmp_path, monkeypatch):
    # Runs go to a fresh folder; cached features stay shared.
    monkeypatch.setattr("steth.models.train.default_cache_root", lambda: tmp_path)
    cfg = tiny_config(icbhi_role="select", keep_epochs=True, hold_out_device="Meditron",
                      max_recordings=12, select_average_max=2)
    run = train(cfg, shared_data, progress=False)
    assert kept_epochs(run) == [1, 2]
    fold = next(f for f in build_folds(load_icbhi(shared_data, "train"))
                if f.held_out == "Meditron")
    chosen, state = select(cfg, shared_data, fold.train, fit_temperatures)
    assert chosen.epochs in ((1,), (2,), (1, 2))
    assert chosen.icbhi_selection_score is not None
    assert chosen.icbhi_selection_cycles > 0
    assert chosen.objective == pytest.approx(objective(chosen.sprsound_validation["mean"],
                                                       chosen.icbhi_selection_score))
    # No Meditron patient is among those it selected on.
    meditron = {r.patient for r in fold.test}
    assert not meditron & {r.patient for r in fold.train}
    out = tmp_path / "export"
    export_run(cfg, shared_data, out, checkpoint_dir=out)
    manifest = json.loads((out / f"{cfg.name}.int8.onnx.manifest.json").read_text())
    assert manifest["thresholds"] == chosen.thresholds
    assert "never used the Meditron" in manifest["training"]["data"]
    assert tuple(manifest["selection"]["epochs"]) == chosen.epochs
    exported = torch.load(out / f"{cfg.name}.pt", weights_only=True)
    assert all(torch.equal(exported[k], v) for k, v in state.items())
    # The int8 file was held against these weights on every validation cycle.
    _, val_set = load_data(cfg, shared_data)
    twin = manifest["int8_twin"]
    assert twin["cycles"] == len(val_set.samples) > 0
    assert 0.0 <= twin["finding_agreement"] <= 1.0
    assert 0.0 <= twin["mean_abs_probability_difference"] <= 1.0
    # The fp32 file differs from its weights by the graph alone, so it meets the target
    # with room; a broken comparison (e.g. mismatched temperatures) would not.
    net = BreathNet(cfg.net)
    net.load_state_dict(exported)
    logits = predict_logits(net, val_set, val_set.samples, cfg.window)
    fp32 = twin_agreement(logits, manifest["calibration"]["temperature"], manifest["thresholds"],
                          out / f"{cfg.name}.fp32.onnx", val_set)
    assert fp32["finding_agreement"] == 1.0
    assert fp32["mean_abs_probability_difference"] < 1e-4
    assert fp32["meets_target"]


def test_an_averaged_candidate_gets_batchnorm_statistics_from_training_batches(shared_data):
    cfg = tiny_config(max_recordings=12)
    model = build_net(cfg.arch, cfg.net)
    train_recordings, _ = training_recordings(cfg, shared_data)
    train_set = build_sample_set(train_recordings, cfg.feature_config(), cfg.window)
    bn = model.bn0
    assert torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))
    refresh_batchnorm(model, cfg, train_set, n_batches=2)
    assert not torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))
    assert int(bn.num_batches_tracked) == 2
    assert not model.training


def manifest_of(cfg) -> SimpleNamespace:
    config = {"use_icbhi": cfg.use_icbhi, "hold_out_device": cfg.hold_out_device,
              "icbhi_role": cfg.icbhi_role}
    return SimpleNamespace(manifest=SimpleNamespace(data={"training": {"config": config}}))


def test_a_recipe_holding_out_every_icbhi_device_scores_icbhi_out_of_sample_and_says_so():
    alone = tiny_config(icbhi_role="select", hold_out_device=ALL_ICBHI)
    assert training_data_text(alone).endswith("SPRSound validation alone")
    assert "ICBHI" not in training_data_text(alone)
    assert not trained_on_icbhi_train(manifest_of(alone), "train")
    fold = tiny_config(icbhi_role="select", hold_out_device="Meditron")
    assert trained_on_icbhi_train(manifest_of(fold), "train")
    assert not trained_on_icbhi_train(manifest_of(fold), "test")
    everything = tiny_config()
    assert "+ the ICBHI 2017 training recordings" in training_data_text(everything)
    assert trained_on_icbhi_train(manifest_of(everything), "train")
    assert not trained_on_icbhi_train(manifest_of(tiny_config(use_icbhi=False)), "train")


def test_seeds_of_a_select_recipe_are_compared_on_what_their_export_chose(tmp_path,
                                                                          monkeypatch):
    monkeypatch.setattr("steth.models.train.default_cache_root", lambda: tmp_path)
    cfg = tiny_config(icbhi_role="select", keep_epochs=True)
    run = run_dir(cfg)
    run.mkdir(parents=True)
    history = [{"epoch": 1, "val": {"mean": 0.70}}, {"epoch": 2, "val": {"mean": 0.75}}]
    (run / "history.json").write_text(json.dumps(history))
    out = tmp_path / "export"
    out.mkdir()
    # Without a selection the best epoch of the history stands for the seed.
    assert exported_validation(cfg, out) == ("epoch 2", {"mean": 0.75})
    chosen = {"label": "average of epochs 1-2", "sprsound_validation": {"mean": 0.77}}
    (out / SELECTION_FILE).write_text(json.dumps(chosen))
    assert exported_validation(cfg, out) == ("average of epochs 1-2", {"mean": 0.77})
