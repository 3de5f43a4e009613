import numpy as np
import pytest
import SimpleITK as sitk

from hecktor_nnunet.io.checks import bqml_to_suv, load_case, pet_looks_like_bqml, read_suv_factors
from hecktor_nnunet.io.problems import CaseError
from hecktor_nnunet.io.release import read_release


def _pet(values):
    return sitk.GetImageFromArray(np.asarray(values, dtype=np.float32))


def test_unit_detection_thresholds():
    suv = np.full((8, 8, 8), 1.0)
    suv[4, 4, 4] = 35.0
    assert pet_looks_like_bqml(_pet(suv))[0] is False
    assert pet_looks_like_bqml(_pet(suv * 5000))[0] is True


def test_bqml_to_suv_formula():
    # 10 kBq/mL, 70 kg, 350 MBq, no delay -> 10000 * 70000 / 350e6 = 2.0 SUV
    out = bqml_to_suv(_pet(np.full((2, 2, 2), 10000.0)), 70, 350, 0)
    assert np.allclose(sitk.GetArrayFromImage(out), 2.0)
    # one half-life later the same concentration means twice the SUV
    out = bqml_to_suv(_pet(np.full((2, 2, 2), 10000.0)), 70, 350, 109.77)
    assert np.allclose(sitk.GetArrayFromImage(out), 4.0, rtol=1e-5)


def test_suv_factor_table_columns(tmp_path):
    p = tmp_path / "f.csv"
    p.write_text("PatientID,Weight\nA-1,70\n")
    with pytest.raises(ValueError, match="InjectedDose_MBq"):
        read_suv_factors(p)


def test_every_bad_kind_is_caught_with_patient_and_file(bad_release):
    rel = read_release(bad_release)
    oracle = __import__("pandas").read_csv(bad_release.parent / "release_oracle.csv").set_index("PatientID")
    expected = {"pet_bqml": "pet_units_bqml", "label_3": "label_values", "missing_pet": "missing_modality",
                "nan_ct": "non_finite", "no_overlap": "no_overlap"}
    warnings_expected = {"empty_gtvn": "empty_gtvn", "label_grid": "label_grid"}
    for case in rel.cases:
        kind = oracle.loc[case.patient_id, "bad"]
        kind = "" if isinstance(kind, float) else kind
        if kind in expected:
            with pytest.raises(CaseError) as e:
                load_case(case)
            codes = {p.code for p in e.value.problems}
            assert expected[kind] in codes, (kind, codes)
            assert all(p.patient_id == case.patient_id for p in e.value.problems)
            assert any(p.file for p in e.value.problems)
        else:
            loaded = load_case(case)
            codes = {p.code for p in loaded.problems}
            if kind in warnings_expected:
                assert warnings_expected[kind] in codes
            if kind == "label_grid":
                assert loaded.label.GetSize() == loaded.ct.GetSize()


def test_unreadable_file_is_named(tmp_path, tiny_release):
    case = read_release(tiny_release).cases[0]
    broken = tmp_path / f"{case.patient_id}__PT.nii.gz"
    broken.write_bytes(b"not an image")
    case.pet = broken
    with pytest.raises(CaseError) as e:
        load_case(case)
    assert e.value.problems[0].code == "unreadable" and str(broken) in str(e.value)


@pytest.mark.parametrize("what,fraction", [("ct", 0.5), ("label", 0.6)])
def test_truncated_nii_gz_is_an_error_not_zeros(tmp_path, tiny_release, what, fraction):
    # SimpleITK reads the missing part of a cut .nii.gz as zeros (half the CT at 0 HU, GTVp gone)
    case = read_release(tiny_release).cases[0]
    source = getattr(case, what)
    cut = tmp_path / source.name
    data = source.read_bytes()
    cut.write_bytes(data[: int(len(data) * fraction)])
    setattr(case, what, cut)
    with pytest.raises(CaseError) as e:
        load_case(case)
    p = e.value.problems[0]
    assert (p.code, p.patient_id, p.file) == ("truncated", case.patient_id, str(cut))
    assert "truncated" in p.message


def test_float_label_values_are_errors_not_cast(tmp_path, tiny_release):
    case = read_release(tiny_release).cases[0]
    label = sitk.ReadImage(str(case.label))
    arr = sitk.GetArrayFromImage(label).astype(np.float32)
    arr[arr == 1] = 1.5  # a cast to uint8 would silently make these GTVp
    bad = sitk.GetImageFromArray(arr)
    bad.CopyInformation(label)
    case.label = tmp_path / case.label.name
    sitk.WriteImage(bad, str(case.label))
    with pytest.raises(CaseError) as e:
        load_case(case)
    p = e.value.problems[0]
    assert p.code == "label_values" and "1.5" in p.message and p.file == str(case.label)
    # integer-valued float labels are fine
    ok = sitk.GetImageFromArray(np.round(arr))
    ok.CopyInformation(label)
    sitk.WriteImage(ok, str(case.label))
    assert load_case(case).label.GetPixelID() == sitk.sitkUInt8
