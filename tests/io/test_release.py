import shutil

import pytest

from hecktor_nnunet.io.ids import normalise_id
from hecktor_nnunet.io.release import detect_layout, read_release
from hecktor_nnunet.demo.synth import generate_release


def test_ids_are_normalised():
    assert normalise_id("CHUM_001") == "CHUM-001"
    assert normalise_id(" MDA-401 ") == "MDA-401"
    assert normalise_id("chum-001") == normalise_id(" Chum_001 ") == "CHUM-001"
    assert normalise_id("study 7") == "study 7"  # not an id of the release's form: only stripped


def test_2025_layout_merges_tasks_and_clinical(tiny_release):
    rel = read_release(tiny_release)
    assert rel.layout == "2025"
    assert len(rel.cases) == 9
    labelled = [c for c in rel.cases if c.labelled]
    assert len(labelled) == 8
    c = labelled[0]
    assert c.tasks == ("Task 1", "Task 2", "Task 3") and c.ct.name.endswith("__CT.nii.gz")
    unl = [c for c in rel.cases if not c.labelled][0]
    assert "Task 1" not in unl.tasks and unl.pet is not None
    assert set(rel.clinical["PatientID"]) == {c.patient_id for c in rel.cases}
    assert {"Relapse", "RFS", "HPV Status", "Centre"} <= set(rel.clinical.columns)
    assert rel.problems == []


def test_2022_layout_and_schema(tmp_path):
    root = tmp_path / "hecktor2022"
    generate_release(root, 3, layout="2022", seed=3, n_unlabelled=1)
    assert detect_layout(root) == "2022"
    rel = read_release(root)
    assert sum(c.labelled for c in rel.cases) == 3 and len(rel.cases) == 4
    assert set(rel.clinical["Gender"].dropna()) <= {0, 1}
    assert rel.clinical["RFS"].notna().all()


def test_label_with_underscore_id_and_duplicates(tmp_path, tiny_release):
    root = tmp_path / "flat"
    root.mkdir()
    case = read_release(tiny_release).cases[0]
    pid = case.patient_id
    shutil.copy(case.ct, root / f"{pid}__CT.nii.gz")
    shutil.copy(case.pet, root / f"{pid}__PT.nii.gz")
    shutil.copy(case.label, root / f"{pid.replace('-', '_')}.nii.gz")
    rel = read_release(root)
    assert rel.layout == "flat" and rel.cases[0].label is not None and rel.problems == []
    shutil.copy(case.ct, root / f"{pid.replace('-', '_')}__CT.nii.gz")
    rel = read_release(root)
    assert [p.code for p in rel.problems] == ["duplicate_id"] and rel.problems[0].patient_id == pid


def test_grand_challenge_layout(tmp_path, tiny_release):
    case = read_release(tiny_release).cases[0]
    for sub, src in (("ct", case.ct), ("pet", case.pet)):
        (tmp_path / "input" / "images" / sub).mkdir(parents=True)
        shutil.copy(src, tmp_path / "input" / "images" / sub / f"uuid-{sub}.nii.gz")
    (tmp_path / "input" / "ehr.json").write_text('{"CenterID": 5, "Age": 56, "Gender": 1, "M-stage": "M0"}')
    rel = read_release(tmp_path)
    assert rel.layout == "grand-challenge" and len(rel.cases) == 1
    assert rel.clinical.loc[0, "Age"] == 56


def test_missing_folder_and_unknown_layout(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_release(tmp_path / "nope")
    with pytest.raises(ValueError, match="does not look like"):
        read_release(tmp_path)


def test_plain_folder_of_label_maps(tmp_path, tiny_release):
    for case in read_release(tiny_release).cases[:3]:
        if case.label:
            shutil.copy(case.label, tmp_path / case.label.name)
    rel = read_release(tmp_path)
    assert rel.layout == "flat" and all(c.label is not None and c.ct is None for c in rel.cases)
    assert {p.code for p in rel.problems} == {"missing_modality"}
