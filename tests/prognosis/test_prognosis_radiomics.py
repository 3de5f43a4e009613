"""Real PyRadiomics with the shipped params files on phantoms with known values and a tiny release."""

import json

import numpy as np
import pandas as pd
import pytest

from prognosis_phantoms import CT_SPACING, HU_IN, SPHERE_R_MM, SUV_IN, write_phantom
from hecktor_nnunet.cli.radiomics import main
from hecktor_nnunet.prognosis.radiomics import extract_features, meta_path, read_features


@pytest.fixture(scope="module")
def phantom_table(phantom, tmp_path_factory):
    out = tmp_path_factory.mktemp("phantom_out") / "features.parquet"
    df = extract_features(phantom / "release", phantom / "masks", out, quiet=True,
                          cache_dir=out.parent / "cache")
    return df.set_index("PatientID"), out


def test_sphere_volume_and_suv(phantom_table):
    row = phantom_table[0].loc["CHUM-001"]
    n_vox = row["PET_GTVp_MTV_ml"] * 1000 / CT_SPACING ** 3
    assert n_vox == pytest.approx(round(n_vox))                    # a whole number of 2 mm voxels
    assert row["PET_GTVp_MTV_ml"] == pytest.approx(4 / 3 * np.pi * SPHERE_R_MM ** 3 / 1000, rel=0.1)
    # the mask is already on 2 mm voxels: PyRadiomics' voxel volume is the same count
    assert row["PET_GTVp_original_shape_VoxelVolume"] == pytest.approx(n_vox * CT_SPACING ** 3)
    assert row["PET_GTVp_original_shape_MeshVolume"] == pytest.approx(4 / 3 * np.pi * SPHERE_R_MM ** 3, rel=0.1)
    assert row["PET_GTVp_original_shape_Sphericity"] > 0.85
    # PET is SUV_IN up to 16 mm from the centre: every statistic of the 10 mm sphere is SUV_IN
    for col in ("PET_GTVp_SUVmax", "PET_GTVp_SUVmean", "PET_GTVp_SUVpeak",
                "PET_GTVp_original_firstorder_Maximum", "PET_GTVp_original_firstorder_Mean"):
        assert row[col] == pytest.approx(SUV_IN, rel=1e-3), col
    assert row["PET_GTVp_TLG"] == pytest.approx(SUV_IN * row["PET_GTVp_MTV_ml"], rel=1e-3)
    assert row["CT_GTVp_original_firstorder_Mean"] == pytest.approx(HU_IN, abs=0.5)
    assert row["MASK_GTVn_count"] == 1
    # node voxel centre at (x, y, z) = (27, 1, 1) mm, sphere centroid at the origin
    assert row["MASK_GTV_primary_to_farthest_node_mm"] == pytest.approx(np.sqrt(27 ** 2 + 2), abs=0.01)


def test_one_voxel_and_empty_regions_are_flagged_nan(phantom_table):
    df = phantom_table[0]
    one = df.loc["CHUM-001"]
    assert one["flag_GTVn_tiny"] == 1 and one["flag_GTVn_empty"] == 0
    assert np.isnan(one["PET_GTVn_original_firstorder_Mean"]) and np.isnan(one["CT_GTVn_original_glcm_Contrast"])
    assert one["flag_GTVp_tiny"] == 0 and np.isfinite(one["CT_GTVp_original_glcm_Contrast"])
    empty = df.loc["CHUP-001"]
    assert all(empty[f"flag_{r}_empty"] == 1 for r in ("GTVp", "GTVn", "GTV"))
    feats = empty.drop([c for c in df.columns if c.startswith("flag_")])
    assert feats.isna().all()
    # same columns for every patient, named <modality>_<region>_<feature>
    assert {c.split("_")[0] for c in df.columns} == {"PET", "CT", "MASK", "flag"}
    problems = df.attrs["radiomics"]["problems"] if "radiomics" in df.attrs else []
    assert not [p for p in problems if p["severity"] == "error"]


def test_metadata_in_parquet_and_sidecar(phantom_table):
    df, out = phantom_table
    table, meta = read_features(out)
    side = json.loads(meta_path(out).read_text())
    assert meta["params_hash"] == side["params_hash"] and len(meta["params_hash"]) == 16
    assert {"pyradiomics", "SimpleITK"} <= set(meta["versions"])
    assert meta["params"]["PET"]["setting"]["binWidth"] == 0.25
    assert meta["params"]["CT"]["setting"]["resegmentRange"] == [-200, 300]
    pd.testing.assert_frame_equal(table.set_index("PatientID"), df, check_like=True)


def test_cache_and_resume(phantom, tmp_path):
    cache = tmp_path / "cache"
    first = extract_features(phantom / "release", phantom / "masks", None, quiet=True, cache_dir=cache)
    assert sorted(p.name for p in cache.glob("*.json")) == ["CHUM-001.json", "CHUP-001.json"]
    # a cached row is reused as it is (proof: a planted value comes back) ...
    data = json.loads((cache / "CHUM-001.json").read_text())
    data["row"]["PET_GTVp_SUVmax"] = 123.0
    (cache / "CHUM-001.json").write_text(json.dumps(data))
    # ... and a patient without cache entry (an interrupted run) is computed again
    (cache / "CHUP-001.json").unlink()
    second = extract_features(phantom / "release", phantom / "masks", None, quiet=True, cache_dir=cache)
    assert second.attrs["radiomics"]["n_cached"] == 1
    assert second.set_index("PatientID").at["CHUM-001", "PET_GTVp_SUVmax"] == 123.0
    assert (cache / "CHUP-001.json").is_file()
    pd.testing.assert_series_equal(first.iloc[1], second.iloc[1])
    # other settings (a shell) invalidate the cache: fresh values and the new region
    third = extract_features(phantom / "release", phantom / "masks", None, quiet=True, cache_dir=cache, shell_mm=4)
    row = third.set_index("PatientID").loc["CHUM-001"]
    assert row["PET_GTVp_SUVmax"] == pytest.approx(SUV_IN, rel=1e-3)
    assert row["flag_GTVshell_empty"] == 0 and np.isfinite(row["PET_GTVshell_original_firstorder_Mean"])
    assert third.attrs["radiomics"]["params_hash"] != first.attrs["radiomics"]["params_hash"]


def test_dask_local_cluster_matches_local_run(phantom, phantom_table):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        df = extract_features(phantom / "release", phantom / "masks", None, quiet=True,
                              dask_scheduler=cluster.scheduler_address)
    pd.testing.assert_frame_equal(df.set_index("PatientID"), phantom_table[0], check_like=True)


def test_synthetic_release_two_workers(synth_masks, tmp_path):
    root, masks, oracle = synth_masks
    df = extract_features(root, masks, tmp_path / "f.csv", workers=2, quiet=True, shell_mm=5)
    assert (tmp_path / "f.csv.meta.json").is_file()
    df = df.set_index("PatientID")
    orc = oracle.set_index("PatientID").loc[df.index]
    assert len(df) == 5
    no_nodes = orc.index[orc["n_nodes"] == 0]
    assert len(no_nodes) >= 1 and (df.loc[no_nodes, "flag_GTVn_empty"] == 1).all()
    assert df.loc[no_nodes, "PET_GTVn_original_firstorder_Mean"].isna().all()
    with_nodes = orc.index[orc["n_nodes"] > 0]
    assert (df.loc[with_nodes, "MASK_GTVn_count"] <= orc.loc[with_nodes, "n_nodes"]).all()
    assert (df.loc[with_nodes, "MASK_GTVn_count"] >= 1).all()
    np.testing.assert_allclose(df["PET_GTVp_MTV_ml"], orc["tumour_volume_ml"], rtol=0.25)
    assert (df["PET_GTVp_SUVmax"] >= df["PET_GTVp_SUVmean"]).all() and (df["PET_GTVp_SUVmean"] > 0).all()
    union_max = np.fmax(df["PET_GTVp_SUVmax"], df["PET_GTVn_SUVmax"])
    np.testing.assert_allclose(df["PET_GTV_SUVmax"], union_max)
    assert (df["flag_GTVshell_empty"] == 0).all()


def test_unreadable_patient_is_reported_not_fatal(tmp_path):
    write_phantom(tmp_path, "CHUM-001", "sphere")
    write_phantom(tmp_path, "CHUS-001", "sphere")
    (tmp_path / "release" / "CHUS-001__PT.nii.gz").write_bytes(b"not an image")
    df = extract_features(tmp_path / "release", tmp_path / "masks", None, quiet=True)
    assert list(df["PatientID"]) == ["CHUM-001"]
    errors = [p for p in df.attrs["radiomics"]["problems"] if p["severity"] == "error"]
    assert len(errors) == 1 and errors[0]["patient_id"] == "CHUS-001"


def test_cli(phantom, tmp_path, capsys):
    out = tmp_path / "f.parquet"
    assert main(["--release", str(phantom / "release"), "--masks", str(phantom / "masks"), "-o", str(out),
                 "--shell-mm", "3", "--regions", "GTVp", "GTV"]) == 0
    df, meta = read_features(out)
    assert "wrote 2 patient(s)" in capsys.readouterr().out and meta["settings"]["shell_mm"] == 3
    assert not [c for c in df.columns if "_GTVn_original" in c]
    assert main(["--release", str(tmp_path / "nowhere"), "--masks", str(phantom / "masks"), "-o", str(out)]) == 2


def _plain_pyradiomics(ct_path, pet_path, mask_path, shell_mm):
    """PyRadiomics the plain way: whole images, one full-grid mask per region, a fresh extractor.

    The images are the CT as read from its file and the PET resampled (linear) onto the whole CT
    grid; the masks are the label map's regions (and the shell: GTV dilated by ``shell_mm``, minus
    the GTV) on the CT grid. Returns ``{column: value}``, None for a region PyRadiomics refuses.
    """
    import SimpleITK as sitk
    from radiomics import featureextractor
    from scipy import ndimage

    from hecktor_nnunet.io.geometry import Grid, resample
    from hecktor_nnunet.prognosis.radiomics_settings import DEFAULT_PARAMS, REGION_LABELS

    ct = sitk.ReadImage(str(ct_path))
    pet = resample(sitk.ReadImage(str(pet_path), sitk.sitkFloat32), Grid.of(ct), "linear", 0.0, sitk.sitkFloat32)
    label_img = sitk.ReadImage(str(mask_path))
    label = sitk.GetArrayFromImage(label_img)
    masks = {region: np.isin(label, values) for region, values in REGION_LABELS.items()}
    dist = ndimage.distance_transform_edt(label == 0, sampling=tuple(reversed(ct.GetSpacing())))
    masks["GTVshell"] = (dist <= shell_mm) & (label == 0)
    out = {}
    for region, mask in masks.items():
        mask_img = sitk.GetImageFromArray(mask.astype(np.uint8))
        mask_img.CopyInformation(label_img)
        for modality, image in (("PET", pet), ("CT", ct)):
            extractor = featureextractor.RadiomicsFeatureExtractor(str(DEFAULT_PARAMS[modality]))
            try:
                result = extractor.execute(image, mask_img, label=1)
            except ValueError:         # e.g. nothing left after the CT resegmentation
                out[(modality, region)] = None
                continue
            out[(modality, region)] = {f"{modality}_{region}_{k}": float(v) for k, v in result.items()
                                       if not k.startswith("diagnostics_")}
    return out


def test_features_equal_plain_pyradiomics_on_whole_images(synth_masks):
    """Cropping, the PET resampled on the crop only and the per-region grids change no value (1e-6)."""
    from hecktor_nnunet.io.release import read_release

    root, masks, _ = synth_masks
    release = read_release(root)
    df = extract_features(root, masks, None, quiet=True, shell_mm=5).set_index("PatientID")
    compared = 0
    for pid in df.index[:3]:
        case = release.case(pid)
        row = df.loc[pid]
        for (modality, region), plain in _plain_pyradiomics(case.ct, case.pet, masks / f"{pid}.nii.gz", 5).items():
            if row[f"flag_{region}_empty"] or row[f"flag_{region}_tiny"] or plain is None:
                assert np.isnan(row[f"{modality}_{region}_original_firstorder_Mean"]), (pid, modality, region)
                continue
            columns = list(plain)
            np.testing.assert_allclose(row[columns].to_numpy(float), [plain[c] for c in columns],
                                       rtol=1e-6, atol=1e-9, err_msg=f"{pid} {modality} {region}")
            compared += len(columns)
    assert compared > 1000
