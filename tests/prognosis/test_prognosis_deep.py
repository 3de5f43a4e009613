"""The deep prognosis model: its Cox loss against a hand computation, the crops (a lesion at the image
border, an empty GTVn, bad inputs named), determinism on the CPU, a saved model predicting as before,
and ``hecktor-prognosis train|predict --model deep`` end to end on tiny synthetic patients."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import torch

from hecktor_nnunet.cli.prognosis import main
from hecktor_nnunet.prognosis.deep_crops import AIR_HU, CT_WINDOW_HU, CropSettings, build_crops
from hecktor_nnunet.prognosis.deep_model import DeepPrognosisModel
from hecktor_nnunet.prognosis.deep_net import binary_loss, cox_loss
from hecktor_nnunet.prognosis.deep_train import deep_dataset, load_deep_model, predict_deep, train_deep

#: small and fast: a 16-voxel cube of 8 mm, a narrow network, two members, two epochs
CROP = CropSettings(size=16, spacing_mm=8.0)
NET = {"width": 4, "hidden": 8, "epochs": 2, "members": 2}


# -- the loss --------------------------------------------------------------------------------------
def test_cox_loss_is_the_breslow_partial_likelihood_by_hand():
    time = [2.0, 3.0, 3.0, 5.0, 6.0]
    event = [1, 1, 1, 0, 1]
    risk = [0.5, -0.2, 0.1, 0.3, -0.4]
    # events at t=2 (everyone at risk), two tied at t=3 (Breslow: both over the risk set {t >= 3}),
    # and at t=6 (only itself at risk: its term is 0); the censored patient at t=5 only sits in risk sets
    at_2 = math.log(sum(math.exp(r) for r in risk))
    at_3 = math.log(math.exp(-0.2) + math.exp(0.1) + math.exp(0.3) + math.exp(-0.4))
    expected = -((0.5 - at_2) + (-0.2 - at_3) + (0.1 - at_3) + (-0.4 - (-0.4))) / 4
    got = cox_loss(torch.tensor(risk), torch.tensor(time), torch.tensor(event))
    assert float(got) == pytest.approx(expected, abs=1e-6)
    # the order of the patients does not matter; Efron's handling of the tie would give another value
    perm = [3, 1, 4, 0, 2]
    again = cox_loss(torch.tensor(risk)[perm], torch.tensor(time)[perm], torch.tensor(event)[perm])
    assert float(again) == pytest.approx(expected, abs=1e-6)
    efron_at_3 = math.log(0.5 * (math.exp(-0.2) + math.exp(0.1)) + math.exp(0.3) + math.exp(-0.4))
    efron = -((0.5 - at_2) + (-0.2 - at_3) + (0.1 - efron_at_3)) / 4
    assert abs(float(got) - efron) > 1e-3
    # no event: zero, and still differentiable
    none = cox_loss(torch.tensor(risk, requires_grad=True), torch.tensor(time), torch.zeros(5))
    assert float(none.detach()) == 0.0 and none.requires_grad


def test_cox_loss_is_minimal_at_scikit_survivals_breslow_estimate():
    from sksurv.linear_model import CoxPHSurvivalAnalysis
    from sksurv.util import Surv

    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    time = np.round(rng.exponential(np.exp(-0.8 * x)) * 10) + 1  # rounded: many ties
    event = rng.uniform(size=40) < 0.7
    beta = CoxPHSurvivalAnalysis(ties="breslow").fit(x[:, None], Surv.from_arrays(event, time)).coef_[0]
    t, e, xt = torch.tensor(time), torch.tensor(event.astype(float)), torch.tensor(x)
    b = torch.tensor(float(beta), dtype=torch.float64, requires_grad=True)
    cox_loss(b * xt, t, e).backward()
    assert abs(float(b.grad)) < 1e-4  # the estimate is a stationary point of this loss
    near = [float(cox_loss((beta + d) * xt, t, e)) for d in (-0.05, 0.0, 0.05)]
    assert near[1] < near[0] and near[1] < near[2]


def test_binary_loss_weights_positives_and_focal_down_weights_easy_patients():
    logit, label = torch.tensor([0.0, 2.0, -1.0]), torch.tensor([1.0, 0.0, 0.0])
    ce = [math.log(2), math.log(1 + math.exp(2)), math.log(1 + math.exp(-1))]
    expected = (3 * ce[0] + ce[1] + ce[2]) / 5  # the positive weighs 3
    assert float(binary_loss(logit, label, 3.0)) == pytest.approx(expected, rel=1e-6)
    # the third patient is classified well (p = 0.27 for a negative): the focal term shrinks it most
    focal = binary_loss(logit, label, 1.0, gamma=2.0)
    p_t = [0.5, 1 / (1 + math.exp(2)), 1 / (1 + math.exp(-1))]
    assert float(focal) == pytest.approx(sum((1 - p) ** 2 * c for p, c in zip(p_t, ce)) / 3, rel=1e-6)


# -- the crops -------------------------------------------------------------------------------------
def _image(arr: np.ndarray, spacing: float, origin: float = 0.0) -> sitk.Image:
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((spacing,) * 3)
    img.SetOrigin((origin,) * 3)
    return img


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory) -> tuple[Path, Path]:
    """Flat release + masks: EDGE-001 (a GTVp cube touching the CT's x = 0 border, no GTVn), EMPTY-001
    (a mask without lesions), NOPET-001 (no PET file), GRID-001 (a mask on a twice coarser grid)."""
    root = tmp_path_factory.mktemp("deep_phantoms")
    release, masks = root / "release", root / "masks"
    release.mkdir()
    masks.mkdir()
    ct = np.full((20, 20, 20), 100, dtype=np.int16)          # CT 20^3 voxels of 4 mm, origin 0
    pet = np.full((14, 14, 14), 3.0, dtype=np.float32)       # PET 14^3 voxels of 8 mm, origin -6 mm
    label = np.zeros(ct.shape, dtype=np.uint8)
    label[8:12, 8:12, 0:4] = 1                               # x index 0-3: at the border of the CT
    for pid, lab in (("EDGE-001", label), ("EMPTY-001", np.zeros_like(label)), ("NOPET-001", label),
                     ("GRID-001", label)):
        sitk.WriteImage(_image(ct, 4.0), str(release / f"{pid}__CT.nii.gz"))
        if pid != "NOPET-001":
            sitk.WriteImage(_image(pet, 8.0, -6.0), str(release / f"{pid}__PT.nii.gz"))
        mask = _image(lab, 4.0) if pid != "GRID-001" else _image(lab[::2, ::2, ::2].copy(), 8.0, 2.0)
        sitk.WriteImage(mask, str(masks / f"{pid}.nii.gz"))
    return release, masks


def test_crop_of_a_lesion_at_the_image_border(phantoms):
    release, masks = phantoms
    store = build_crops(release, masks, CropSettings(size=16, spacing_mm=4.0), patients=["EDGE-001"])
    image = store["EDGE-001"].image
    assert image.shape == (4, 16, 16, 16) and image.dtype == np.float32
    # the cube is centred on the lesion's box (x 0-12 mm, y and z 32-44 mm) on the CT's own voxel
    # centres: cube voxel i is CT voxel i - 6 along x and i + 2 along y and z
    gtvp = np.zeros((16, 16, 16), dtype=np.float32)
    gtvp[6:10, 6:10, 6:10] = 1
    np.testing.assert_allclose(image[2], gtvp, atol=1e-5)
    np.testing.assert_array_equal(image[3], 0)  # no GTVn
    # beyond the CT (x index < 0) the CT channel is air; inside it the body's 100 HU
    air = np.clip(AIR_HU, *CT_WINDOW_HU) / CT_WINDOW_HU[1]
    np.testing.assert_allclose(image[0][:, :, :6], air, atol=1e-6)
    np.testing.assert_allclose(image[0][:, :, 6:], 100 / CT_WINDOW_HU[1], atol=1e-5)
    np.testing.assert_allclose(image[1][6:10, 6:10, 6:10], np.log1p(3.0), atol=1e-5)
    m = store["EDGE-001"].measures
    assert m["PET_GTVp_MTV_ml"] == pytest.approx(64 * 64 / 1000) and m["PET_GTVp_SUVmax"] == pytest.approx(3.0)
    assert math.isnan(m["PET_GTVn_SUVmax"]) and m["MASK_GTVn_count"] == 0
    assert not [p for p in store.problems if p.patient_id == "EDGE-001"]


def test_bad_inputs_are_named_never_a_silent_zero_crop(phantoms):
    release, masks = phantoms
    store = build_crops(release, masks, CropSettings(size=16, spacing_mm=4.0))
    assert set(store) == {"EDGE-001"}
    why = store.without_crop()
    assert set(why) == {"EMPTY-001", "NOPET-001", "GRID-001"}
    assert "no GTVp or GTVn voxel" in why["EMPTY-001"] and "EMPTY-001.nii.gz" in why["EMPTY-001"]
    assert "no PET image" in why["NOPET-001"] and "NOPET-001__CT" in why["NOPET-001"]
    assert "grid" in why["GRID-001"] and "--resample-nearest" in why["GRID-001"]
    with pytest.raises(KeyError, match="EMPTY-001 has no crop: the mask has no GTVp"):
        store["EMPTY-001"]
    # the documented fallbacks, each a warning naming the patient
    store = build_crops(release, masks, CropSettings(size=16, spacing_mm=4.0, empty_mask="centre",
                                                    resample_nearest=True), patients=["EMPTY-001", "GRID-001"])
    assert set(store) == {"EMPTY-001", "GRID-001"}
    codes = {(p.patient_id, p.code, p.severity) for p in store.problems}
    assert {("EMPTY-001", "mask_empty_centred", "warning"), ("GRID-001", "resampled", "warning")} <= codes
    empty = store["EMPTY-001"]
    np.testing.assert_array_equal(empty.image[2:], 0)
    np.testing.assert_allclose(empty.image[0], 100 / CT_WINDOW_HU[1], atol=1e-5)  # the body, not zeros
    np.testing.assert_allclose(empty.image[1], np.log1p(3.0), atol=1e-5)
    assert math.isnan(empty.measures["PET_GTVp_SUVmax"])
    assert store["GRID-001"].image[2].sum() > 0


# -- the model on tiny synthetic patients ------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    """48 tiny synthetic patients with planted outcomes, their true masks, the clinical table, crops."""
    from hecktor_nnunet.demo.synth import generate_release

    base = tmp_path_factory.mktemp("deep_tiny")
    generate_release(base / "release", 0, n_unlabelled=48, size="tiny", seed=4, oracle_labels=base / "masks")
    clinical = base / "release" / "Task 2" / "HECKTOR_2025_Training_Task_2.csv"
    data, store = deep_dataset("rfs", base / "release", base / "masks", clinical, crop=CROP, cache=base / "cache",
                               quiet=True)
    return {"base": base, "clinical": clinical, "data": data, "store": store}


def test_a_fixed_seed_gives_the_same_model_on_the_cpu(tiny):
    data, store = tiny["data"], tiny["store"]

    def fit(seed: int) -> DeepPrognosisModel:
        return DeepPrognosisModel(task="rfs", crops=store, random_state=seed, **NET).fit(data.X, data.y)

    a, b, c = fit(0), fit(0), fit(1)
    np.testing.assert_array_equal(a.decision_score(data.X), b.decision_score(data.X))
    for na, nb in zip(a.nets_, b.nets_):
        for (k, va), vb in zip(na.state_dict().items(), nb.state_dict().values()):
            assert torch.equal(va, vb), k
    assert not np.allclose(a.decision_score(data.X), c.decision_score(data.X))
    assert [m["epochs_run"] for m in a.members_] == [2, 2] and len(a.oof_score_) == len(data.X)
    # training happened (the validation loss moved after epoch 0) and took the same path both times
    for ma, mb in zip(a.members_, b.members_):
        assert ma["validation_history"] == mb["validation_history"]
        assert len(set(ma["validation_history"])) == 3


def test_saved_model_predicts_as_before_saving_and_writes_deep_features(tiny, tmp_path):
    from hecktor_nnunet.prognosis.radiomics import read_features

    base = tiny["base"]
    model = train_deep("hpv", base / "release", base / "masks", tiny["clinical"], tmp_path / "model", crop=CROP,
                       cache=base / "cache", net=NET, cv=None, quiet=True)
    info = json.loads((tmp_path / "model" / "prognosis.json").read_text())
    assert info["model"] == "deep" and info["task"] == "hpv" and "torch" in info["versions"]
    assert info["network"]["input"]["image"] == [4, 16, 16, 16] and 0 < info["params"]["threshold"] < 1
    assert "CLIN_HPV" not in info["feature_names_in"] and "PET_GTVp_SUVmax" in info["feature_names_in"]
    clinical = pd.read_csv(tiny["clinical"]).drop(columns=["HPV Status", "Relapse", "RFS"])
    out = predict_deep(tmp_path / "model", base / "release", base / "masks", tmp_path / "p.csv",
                       clinical=clinical, cache=base / "cache", features_out=tmp_path / "deep.csv", quiet=True)
    X = tiny["data"].X.drop(columns=["CLIN_HPV"]).loc[out["PatientID"]]
    assert len(X) == 48  # every patient is predicted, those without an HPV status too
    model.set_params(crops=tiny["store"])
    np.testing.assert_allclose(out["Probability"], model.decision_score(X), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(out["Prediction"], model.predict(X))
    loaded, _ = load_deep_model(tmp_path / "model")
    loaded.set_params(crops=tiny["store"])
    np.testing.assert_allclose(loaded.decision_score(X), model.decision_score(X), rtol=1e-6, atol=1e-7)
    feats, meta = read_features(tmp_path / "deep.csv")
    assert meta["params_hash"] == info["weights_sha256"] and len(feats) == len(out)
    assert feats.columns[0] == "PatientID" and len(feats.columns) == 1 + 2 * NET["hidden"] + 1
    assert all(c.startswith("deep_") for c in feats.columns[1:])


def test_cli_train_cv_and_predict_deep(tiny, tmp_path, capsys):
    base = tiny["base"]
    deep = ["--model", "deep", "--release", str(base / "release"), "--masks", str(base / "masks"),
            "--cache", str(base / "cache"), "--crop-size", "16", "--crop-spacing", "8", "--width", "4",
            "--epochs", "2", "--members", "2", "--quiet"]
    # a patient without a mask is left out and named (links to the masks: the cached crops are reused)
    masks = tmp_path / "masks"
    masks.mkdir()
    gone, *kept = sorted((base / "masks").iterdir())
    for path in kept:
        (masks / path.name).symlink_to(path)
    deep[deep.index(str(base / "masks"))] = str(masks)
    rc = main(["train", "rfs", "--clinical", str(tiny["clinical"]), "-o", str(tmp_path / "m"), "--n-folds", "2",
               "--n-boot", "20", *deep])
    assert rc == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "m" / "cv_report.json").read_text())
    assert report["model"] == "deep" and 0 <= report["c_index"] <= 1 and len(report["c_index_ci95"]) == 2
    assert {"per_centre", "folds", "left_out"} <= set(report) and len(report["folds"]) == 2
    assert gone.name.split(".")[0] in report["left_out"]["without_crop"]
    assert {p.name for p in (tmp_path / "m").iterdir()} >= {"prognosis.json", "weights.pt", "cv_report.json",
                                                           "oof_predictions.csv", "km_risk_groups.png"}
    rc = main(["predict", "--model-dir", str(tmp_path / "m"), "--release", str(base / "release"), "--masks",
               str(masks), "--clinical", str(tiny["clinical"]), "-o", str(tmp_path / "p.csv"), "--json-dir",
               str(tmp_path / "js"), "--cache", str(base / "cache"), "--quiet"])
    assert rc == 0
    preds = pd.read_csv(tmp_path / "p.csv")
    assert list(preds.columns) == ["PatientID", "Prediction"] and len(preds) == 47
    assert "1 patient(s) not scored" in capsys.readouterr().out
    assert json.loads((tmp_path / "js" / f"{preds.PatientID[0]}.json").read_text()) == pytest.approx(
        preds.Prediction[0])
    # a deep model needs images; --features is refused
    rc = main(["cv", "hpv", "--clinical", str(tiny["clinical"]), "-o", str(tmp_path / "x"), "--model", "deep",
               "--features", "f.csv"])
    assert rc == 2 and "--release and --masks" in capsys.readouterr().err


def test_compare_scores_the_network_on_the_folds_and_patients_of_every_other_row(tiny, tmp_path, capsys):
    from hecktor_nnunet.prognosis.cv import splits
    from hecktor_nnunet.prognosis.selection import stratify_labels

    base, data, store = tiny["base"], tiny["data"], tiny["store"]
    masks = tmp_path / "masks"
    masks.mkdir()
    no_crop, *kept = sorted((base / "masks").iterdir())
    for path in kept:
        (masks / path.name).symlink_to(path)
    no_crop = no_crop.name.split(".")[0]
    no_features = data.X.index[-1]
    measures = [c for c in data.X.columns if c.startswith("PET_")]
    table = data.X[measures].drop(index=no_features).add_prefix("rad_").reset_index()
    table.to_csv(tmp_path / "features.csv", index=False)
    rc = main(["compare", "rfs", "--features", str(tmp_path / "features.csv"), "--clinical", str(tiny["clinical"]),
               "-o", str(tmp_path / "cmp"), "--models", "coxnet", "clinical", "--n-folds", "2", "--n-boot", "50",
               "--release", str(base / "release"), "--masks", str(masks), "--cache", str(base / "cache"),
               "--crop-size", "16", "--crop-spacing", "8", "--width", "4", "--epochs", "2", "--members", "2",
               "--quiet"])
    assert rc == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    rows = {r["model"]: r for r in report["rows"]}
    assert list(rows) == ["auto", "coxnet", "clinical", "deep"]
    assert rows["deep"]["label"].startswith("deep") and rows["deep"]["error"] is None
    assert 0 <= rows["deep"]["score"] <= 1 and rows["deep"]["ci"] and rows["deep"]["p_value"] is not None
    # every row on the 46 patients with both features and a crop; the two others named with the reason
    assert report["n_patients"] == report["n_patients_used"] == 46 and {r["n_patients"] for r in rows.values()} == {46}
    assert list(report["left_out"]["without_crop"]) == [no_crop]
    assert f"no mask {no_crop}.nii.gz" in report["left_out"]["without_crop"][no_crop]
    assert no_features in report["left_out"]["clinical_without_features"]
    # same folds as the other rows, and each fold's network is the one a user would fit by hand
    oof = pd.read_csv(tmp_path / "cmp" / "oof_predictions.csv")
    by_model = {m: g.set_index("PatientID")["fold"].sort_index() for m, g in oof.groupby("model")}
    pd.testing.assert_series_equal(by_model["deep"], by_model["coxnet"])
    shared = data.X.index[data.X.index.isin(by_model["deep"].index)]
    X, y, centres = data.X.loc[shared], data.y[data.X.index.isin(shared)], data.centres[data.X.index.isin(shared)]
    train, test = splits(centres, stratify_labels("rfs", y), "centre-stratified", 2, 0)[0]
    model = DeepPrognosisModel(task="rfs", crops=store, random_state=0, width=4, epochs=2, members=2)
    model.fit(X.iloc[train], y[train])
    deep_oof = oof[(oof.model == "deep") & (oof.fold == 0)].set_index("PatientID")["score"]
    np.testing.assert_allclose(deep_oof.loc[X.index[test]], model.decision_score(X.iloc[test]), rtol=1e-5, atol=1e-6)
    # one of the two deep inputs alone is refused
    rc = main(["compare", "rfs", "--features", str(tmp_path / "features.csv"), "--clinical", str(tiny["clinical"]),
               "-o", str(tmp_path / "x"), "--release", str(base / "release")])
    assert rc == 2 and "--release and --masks" in capsys.readouterr().err
