"""hecktor-radiomics on awkward inputs (issue 24): degenerate regions, masks off the CT grid, patients
without a mask, and the same patient stored LPS or RAS. Real PyRadiomics and SimpleITK throughout."""

import shutil

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from prognosis_phantoms import flip_xy, write_phantom
from hecktor_nnunet.cli.radiomics import main
from hecktor_nnunet.demo.steps import write_demo_params
from hecktor_nnunet.demo.synth import generate_release
from hecktor_nnunet.io.release import read_release
from hecktor_nnunet.prognosis.radiomics import extract_features, read_features
from hecktor_nnunet.prognosis.radiomics_settings import DEFAULT_PARAMS
from hecktor_nnunet.prognosis.radiomics_extent import KEPT_CLASSES, Extent, degenerate_extractor

TEXTURE = ("glcm", "glrlm", "glszm", "gldm", "ngtdm")


def _mask(shape, *voxels) -> np.ndarray:
    out = np.zeros(shape, dtype=np.uint8)
    for v in voxels:
        out[v] = 1
    return out


def test_extent_and_shortfall_by_hand():
    shape = (9, 9, 9)
    line = _mask(shape, *[(4, 4, x) for x in range(2, 6)])
    plane = _mask(shape, *[(4, y, x) for y in range(3, 6) for x in range(3, 6)])
    cube = _mask(shape, *[(z, y, x) for z in range(3, 5) for y in range(3, 5) for x in range(3, 5)])
    apart = _mask(shape, (1, 1, 1), (4, 4, 4), (7, 7, 7))
    assert Extent.of(line) == Extent(4, 1, True) and Extent.of(plane) == Extent(9, 2, True)
    assert Extent.of(apart) == Extent(3, 3, False) and Extent.of(_mask(shape)) == Extent(0, 0, False)
    shipped = {"minimumROIDimensions": 2}
    assert Extent.of(_mask(shape, (4, 4, 4))).shortfall(shipped) == "1 voxel(s)"
    assert Extent.of(_mask(shape, (4, 4, 4), (4, 4, 5))).shortfall(shipped) == "2 voxel(s)"
    assert Extent.of(line).shortfall(shipped) == "1-D (minimumROIDimensions 2)"
    assert Extent.of(line).shortfall({"minimumROIDimensions": 1}) is None
    assert Extent.of(plane).shortfall(shipped) is None
    assert Extent.of(plane).shortfall({"minimumROIDimensions": 3}) == "2-D (minimumROIDimensions 3)"
    assert Extent.of(plane).shortfall({"minimumROISize": 9}) == "9 voxels (minimumROISize 9)"
    assert Extent.of(apart).shortfall(shipped) == "no two voxels touch"
    assert Extent.of(cube).shortfall(shipped) is None


def _features(result) -> dict[str, float]:
    return {k: float(v) for k, v in result.items() if not k.startswith("diagnostics_")}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy's "Mean of empty slice" inside PyRadiomics
def test_what_pyradiomics_does_with_small_regions():
    """The measured facts behind the degenerate rule (radiomics_extent's docstring), on 12^3 voxels."""
    from radiomics import featureextractor

    image = sitk.GetImageFromArray(np.random.default_rng(0).uniform(0, 10, (12, 12, 12)).astype(np.float32))
    image.SetSpacing((2.0, 2.0, 2.0))

    def mask(*voxels):
        out = sitk.GetImageFromArray(_mask((12, 12, 12), *voxels))
        out.CopyInformation(image)
        return out

    path = str(DEFAULT_PARAMS["PET"])
    line = mask(*[(5, 5, x) for x in range(3, 8)])
    plane = mask(*[(5, y, x) for y in range(4, 7) for x in range(4, 7)])
    with pytest.raises(ValueError, match="too few dimensions"):  # the demo's failure, shipped settings
        featureextractor.RadiomicsFeatureExtractor(path, resampledPixelSpacing=None).execute(image, line, label=1)
    with pytest.raises(ValueError, match="1 segmented voxel"):  # refused whatever the settings
        degenerate_extractor(path, True).execute(image, mask((5, 5, 5)), label=1)
    relaxed = featureextractor.RadiomicsFeatureExtractor(path, resampledPixelSpacing=None, minimumROIDimensions=1)
    for region in (line, plane):  # the classes themselves cope with a line and a plane
        values = _features(relaxed.execute(image, region, label=1))
        assert {k.split("_")[1] for k in values} == {*KEPT_CLASSES, *TEXTURE}
        assert all(np.isfinite(v) for v in values.values())
    pair = _features(degenerate_extractor(path, True).execute(image, mask((5, 5, 5), (5, 5, 6)), label=1))
    assert {k.split("_")[1] for k in pair} == set(KEPT_CLASSES)
    assert [k for k, v in pair.items() if not np.isfinite(v)] == ["original_firstorder_RobustMeanAbsoluteDeviation"]
    apart = _features(relaxed.execute(image, mask((2, 2, 2), (5, 5, 5), (8, 8, 8)), label=1))
    assert all(np.isnan(v) for k, v in apart.items() if "_glcm_" in k)


#: What each patient's "predicted" mask holds, at the centre of its true GTVp (soft tissue).
DEGENERATE = {"CHUM-001": "GTVn line", "CHUP-001": "GTVp voxel", "CHUS-001": "GTVn plane"}


@pytest.fixture(scope="module")
def degenerate_masks(tmp_path_factory):
    """Three tiny synthetic patients (4.2 x 4.2 x 6 mm CT voxels) and masks holding a 4-voxel GTVn line
    (the demo's failure), a single-voxel GTVp and a flat 3x3 GTVn plane; the rest of the true labels kept."""
    base = tmp_path_factory.mktemp("degenerate")
    generate_release(base / "release", 3, size="tiny", seed=5)
    masks = base / "masks"
    masks.mkdir()
    for case in read_release(base / "release").cases:
        image = sitk.ReadImage(str(case.label))
        a = sitk.GetArrayFromImage(image)
        z, y, x = np.round(np.argwhere(a == 1).mean(axis=0)).astype(int)
        kind = DEGENERATE[case.patient_id]
        a[a == (1 if kind == "GTVp voxel" else 2)] = 0
        if kind == "GTVn line":
            a[z, y, x:x + 4] = 2
        elif kind == "GTVp voxel":
            a[z, y, x] = 1
        else:
            a[z, y - 1:y + 2, x - 1:x + 2] = 2
        out = sitk.GetImageFromArray(a)
        out.CopyInformation(image)
        sitk.WriteImage(out, str(masks / case.label.name))
    return base / "release", masks


def _columns(df, *prefixes):
    cols = [c for c in df.columns if c.startswith(prefixes)]
    assert cols, prefixes
    return cols


def test_demo_radiomics_step_on_degenerate_masks(degenerate_masks, tmp_path, capsys):
    """The demo's params (first order at 4 mm) through the CLI: exit 0, every patient, flagged, named."""
    release, masks = degenerate_masks
    params = write_demo_params(tmp_path)
    out = tmp_path / "features.parquet"
    assert main(["--release", str(release), "--masks", str(masks), "-o", str(out), "--params-pet", str(params["PET"]),
                 "--params-ct", str(params["CT"]), "--cache", str(tmp_path / "cache")]) == 0
    printed = capsys.readouterr().out
    df, meta = read_features(out)
    df = df.set_index("PatientID")
    assert sorted(df.index) == sorted(DEGENERATE) and meta["patients_without_row"] == []
    line, voxel, plane = df.loc["CHUM-001"], df.loc["CHUP-001"], df.loc["CHUS-001"]
    assert line["flag_GTVn_degenerate"] == 1 and line["flag_GTVn_tiny"] == 0
    assert np.isfinite(line[_columns(df, "PET_GTVn_original_firstorder", "CT_GTVn_original_firstorder")]).all()
    assert voxel["flag_GTVp_tiny"] == 1 and np.isfinite(voxel["PET_GTVp_SUVmax"])
    assert plane["flag_GTVn_degenerate"] == 0 and np.isfinite(plane[_columns(df, "PET_GTVn_original")]).all()
    assert df[_columns(df, "flag_GTVp_degenerate", "flag_GTV_degenerate")].eq(0).all().all()
    problems = meta["problems"]
    assert not [p for p in problems if p["severity"] == "error"]
    degenerate = [p for p in problems if p["code"] == "region_degenerate"]
    assert [p["patient_id"] for p in degenerate] == ["CHUM-001"]  # one warning for the region, both modalities
    assert "region GTVn" in degenerate[0]["message"] and "PET 1-D" in degenerate[0]["message"]
    assert "CT 1-D" in degenerate[0]["message"]
    assert {p["patient_id"] for p in problems if p["code"] == "region_tiny"} == {"CHUP-001"}
    assert "WARNING CHUM-001" in printed and "WARNING CHUP-001" in printed and "no row for" not in printed


def test_shipped_params_on_degenerate_masks(degenerate_masks):
    """Shape and texture classes, no volume threshold: a line keeps shape and first order, a voxel
    keeps the PET descriptors, a plane keeps everything; nothing is an error."""
    release, masks = degenerate_masks
    df = extract_features(release, masks, None, quiet=True, min_volume_ml=0)
    problems = df.attrs["radiomics"]["problems"]
    df = df.set_index("PatientID")
    assert sorted(df.index) == sorted(DEGENERATE)
    assert not [p for p in problems if p["severity"] == "error"]
    line, voxel, plane = df.loc["CHUM-001"], df.loc["CHUP-001"], df.loc["CHUS-001"]
    assert line["flag_GTVn_degenerate"] == 1
    kept = _columns(df, "PET_GTVn_original_shape", "PET_GTVn_original_firstorder", "CT_GTVn_original_firstorder")
    assert np.isfinite(line[kept]).all() and line["PET_GTVn_original_shape_VoxelVolume"] > 0
    texture = _columns(df, *(f"{m}_GTVn_original_{c}" for m in ("PET", "CT") for c in TEXTURE))
    assert line[texture].isna().all()
    assert voxel["flag_GTVp_degenerate"] == 1 and voxel["flag_GTVp_tiny"] == 0
    assert voxel[_columns(df, "PET_GTVp_original", "CT_GTVp_original")].isna().all()
    assert voxel["PET_GTVp_MTV_ml"] == pytest.approx(4.2 * 4.2 * 6.0 / 1000) and np.isfinite(voxel["PET_GTVp_SUVmax"])
    assert plane["flag_GTVn_degenerate"] == 0 and np.isfinite(plane[_columns(df, "PET_GTVn_original")]).all()
    named = sorted((p["patient_id"], p["message"].split(" is ")[0]) for p in problems
                   if p["code"] == "region_degenerate")
    assert named == [("CHUM-001", "region GTVn"), ("CHUP-001", "region GTV"), ("CHUP-001", "region GTVp")]


def test_a_feature_failing_on_a_proper_region_stays_an_error(tmp_path):
    """Four voxels spanning 3-D, some touching: not degenerate, yet PyRadiomics' mesh of them has no
    volume (ZeroDivisionError in SurfaceVolumeRatio, logged by PyRadiomics): an error naming patient,
    region and feature, the row kept."""
    write_phantom(tmp_path, "CHUM-001", "sphere")
    path = tmp_path / "masks" / "CHUM-001.nii.gz"
    image = sitk.ReadImage(str(path))
    a = sitk.GetArrayFromImage(image)
    a[a == 2] = 0
    for dz, dy, dx in ((0, 0, 1), (2, 0, 2), (2, 1, 1), (2, 2, 0)):
        a[20 + dz, 20 + dy, 31 + dx] = 2
    out = sitk.GetImageFromArray(a)
    out.CopyInformation(image)
    sitk.WriteImage(out, str(path))
    df = extract_features(tmp_path / "release", tmp_path / "masks", None, quiet=True, min_volume_ml=0)
    errors = [p for p in df.attrs["radiomics"]["problems"] if p["severity"] == "error"]
    assert [(p["patient_id"], p["code"]) for p in errors] == [("CHUM-001", "feature_failed")]
    assert "PET region GTVn: feature original_shape_SurfaceVolumeRatio" in errors[0]["message"]
    row = df.set_index("PatientID").loc["CHUM-001"]
    assert row["flag_GTVn_degenerate"] == 0 and np.isfinite(row["PET_GTVn_original_glcm_Contrast"])


def test_nan_in_the_pet_is_an_error_naming_patient_and_file(tmp_path):
    write_phantom(tmp_path, "CHUM-001", "sphere")
    write_phantom(tmp_path, "CHUS-001", "sphere")
    path = tmp_path / "release" / "CHUS-001__PT.nii.gz"
    pet = sitk.ReadImage(str(path))
    a = sitk.GetArrayFromImage(pet)
    a[12, 12, 12] = np.nan
    out = sitk.GetImageFromArray(a)
    out.CopyInformation(pet)
    path.unlink()
    sitk.WriteImage(out, str(path.with_name("CHUS-001__PT.mha")))  # NIfTI would read NaN back as 0
    df = extract_features(tmp_path / "release", tmp_path / "masks", None, quiet=True)
    assert list(df["PatientID"]) == ["CHUM-001"] and df.attrs["radiomics"]["patients_without_row"] == ["CHUS-001"]
    errors = [p for p in df.attrs["radiomics"]["problems"] if p["severity"] == "error"]
    assert [(p["patient_id"], p["file"], p["code"]) for p in errors] == [
        ("CHUS-001", str(path.with_name("CHUS-001__PT.mha")), "non_finite")]
    assert "PET has 64 NaN or infinite voxel(s) around the labels" in errors[0]["message"]


def test_mask_off_the_ct_grid_is_refused_unless_resample_nearest(tmp_path, capsys):
    """A mask whose header was lost (spacing 1, origin 0): refused as hecktor-evaluate seg refuses it; with
    --resample-nearest it is used, and that cached row is not reused once the opt-in is dropped."""
    write_phantom(tmp_path, "CHUM-001", "sphere")
    path = tmp_path / "masks" / "CHUM-001.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(sitk.GetArrayFromImage(sitk.ReadImage(str(path)))), str(path))
    out = tmp_path / "f.csv"
    args = ["--release", str(tmp_path / "release"), "--masks", str(tmp_path / "masks"), "-o", str(out),
            "--cache", str(tmp_path / "cache")]
    assert main(args) == 1
    printed = capsys.readouterr().out
    assert (f"ERROR CHUM-001 [{path}]: mask grid (size (40, 40, 40), spacing (1.0, 1.0, 1.0), origin (0.0, 0.0, 0.0))"
            " differs from the CT grid (size (40, 40, 40), spacing (2.0, 2.0, 2.0), origin (-39.0, -39.0, -39.0));"
            " use --resample-nearest to resample it (grid_mismatch)") in printed
    assert "no row for 1 patient(s) (see the problems above): CHUM-001" in printed
    df, meta = read_features(out)
    assert len(df) == 0 and "flag_GTVp_degenerate" in df.columns
    assert main(args + ["--resample-nearest"]) == 0
    assert "mask resampled (nearest) onto the CT grid (resampled)" in capsys.readouterr().out
    assert list(read_features(out)[0]["PatientID"]) == ["CHUM-001"]
    assert main(args) == 1 and "(grid_mismatch)" in capsys.readouterr().out


def test_every_patient_and_every_mask_is_accounted_for(tmp_path, capsys):
    for pid in ("CHUM-001", "CHUP-001", "CHUS-001"):
        write_phantom(tmp_path, pid, "sphere")
    masks = tmp_path / "masks"
    (masks / "CHUM-001.nii.gz").rename(masks / "CHUM_001.nii.gz")  # the other spelling of the id
    (masks / "CHUP-001.nii.gz").unlink()  # a patient of the release without a mask
    shutil.copy(masks / "CHUS-001.nii.gz", masks / "MDA-001.nii.gz")  # a mask without images
    out = tmp_path / "f.csv"
    args = ["--release", str(tmp_path / "release"), "--masks", str(masks), "-o", str(out), "--quiet"]
    assert main(args) == 1
    printed = capsys.readouterr().out
    assert f"ERROR CHUP-001 [{masks}]: no mask <ID>.nii.gz for this patient of the release" in printed
    assert "ERROR MDA-001" in printed and "(no_images)" in printed
    assert "no row for 2 patient(s) (see the problems above): CHUP-001, MDA-001" in printed
    df, meta = read_features(out)
    assert list(df["PatientID"]) == ["CHUM-001", "CHUS-001"] and meta["patients_without_row"] == ["CHUP-001", "MDA-001"]
    (masks / "MDA-001.nii.gz").unlink()
    assert main(args + ["--skip-missing"]) == 0
    printed = capsys.readouterr().out
    assert "WARNING CHUP-001" in printed and "(no_mask)" in printed
    assert "no row for 1 patient(s) (see the problems above): CHUP-001" in printed


def test_lps_and_ras_storage_give_identical_features(synth_masks, tmp_path):
    """Two patients stored as generated (LPS) and flipped along x and y with matching direction and
    origin (RAS; CT, PET and mask): every feature identical. The flipped files are MetaImage, whose
    origin is stored in double precision (NIfTI's float32 origin would move it by ~1e-6 mm)."""
    root, masks, _ = synth_masks
    release = read_release(root)
    for case in release.cases[:2]:
        for folder, convert, suffix in (("lps", lambda img: img, ".nii.gz"), ("ras", flip_xy, ".mha")):
            for path, name in ((case.ct, f"release/{case.patient_id}__CT"),
                               (case.pet, f"release/{case.patient_id}__PT"),
                               (masks / f"{case.patient_id}.nii.gz", f"masks/{case.patient_id}")):
                (tmp_path / folder / name).parent.mkdir(parents=True, exist_ok=True)
                sitk.WriteImage(convert(sitk.ReadImage(str(path))), str(tmp_path / folder / f"{name}{suffix}"))
    ras_ct = sitk.ReadImage(str(tmp_path / "ras" / "release" / f"{release.cases[0].patient_id}__CT.mha"))
    assert sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(ras_ct.GetDirection()) == "RAS"
    lps, ras = (extract_features(tmp_path / f / "release", tmp_path / f / "masks", None, quiet=True, shell_mm=5)
                for f in ("lps", "ras"))
    assert len(lps) == 2 and lps.filter(like="_original_").notna().sum().sum() > 1000
    pd.testing.assert_frame_equal(lps, ras, check_exact=True)
