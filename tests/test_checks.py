import numpy as np
import pytest
import SimpleITK as sitk

from hecktor_nnunet.checks import bqml_to_suv, load_case, pet_looks_like_bqml, read_suv_factors
from hecktor_nnunet.problems import CaseError
from hecktor_nnunet.release import read_release


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
