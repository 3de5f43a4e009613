import pandas as pd
import pytest

from hecktor_nnunet.io.clinical import read_clinical, read_clinical_tables
from hecktor_nnunet.io.tables import read_table, sniff_dialect


def test_2022_names_and_codes_map_to_schema(tmp_path):
    p = tmp_path / "hecktor2022_clinical_info_training.csv"
    pd.DataFrame({"PatientID": ["CHUM_001", "CHUP-002"], "Gender": ["M", "F"], "Tobacco": [1, None],
                  "Performance status": [0, 2], "HPV status (0=-, 1=+)": [1, None], "Chemotherapy": [1, 0],
                  "CenterID": [1, 2]}).to_csv(p, index=False)
    e = tmp_path / "hecktor2022_endpoint_training.csv"
    pd.DataFrame({"PatientID": ["CHUM-001", "CHUP-002"], "Relapse": [1, 0], "RFS": [300, 900]}).to_csv(e, index=False)
    df, problems = read_clinical_tables([p, e])
    row = df.set_index("PatientID").loc["CHUM-001"]
    assert row["Gender"] == 1 and row["Tobacco Consumption"] == 1 and row["HPV Status"] == 1
    assert row["Treatment"] == 1 and row["Relapse"] == 1 and row["RFS"] == 300 and row["Centre"] == "CHUM"
    assert pd.isna(df.set_index("PatientID").loc["CHUP-002", "HPV Status"])
    assert problems == []


def test_conflicts_and_bad_values_are_reported(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    pd.DataFrame({"PatientID": ["X-1"], "Age": ["sixty"], "M-stage": ["m0"]}).to_csv(a, index=False)
    pd.DataFrame({"PatientID": ["X-1"], "Age": [61], "RFS": [10]}).to_csv(b, index=False)
    df, problems = read_clinical_tables([a, b])
    assert df.loc[0, "Age"] == 61 and df.loc[0, "M-stage"] == "M0"
    assert [p.code for p in problems] == ["clinical_value"] and problems[0].patient_id == "X-1"


def test_one_odd_cell_raises_one_warning_not_a_conflict_per_patient(tmp_path):
    # an empty and a text cell make the first file's numeric columns float: 57.0 and 57 must still agree
    ids = [f"CHUM-{i:03d}" for i in range(1, 23)]
    a, b = tmp_path / "task1.csv", tmp_path / "task2.csv"
    ages = [57 + i for i in range(22)]
    first = pd.DataFrame({"PatientID": ids, "Age": [str(x) for x in ages], "Misc": ages})
    first.loc[0, "Age"], first.loc[1, "Age"] = "", "unknown"
    first.loc[0, "Misc"] = None
    first.to_csv(a, index=False)
    second = pd.DataFrame({"PatientID": ids, "Age": ages, "Misc": ages})
    second.loc[5, "Age"] = 99  # the one real conflict
    second.to_csv(b, index=False)
    df, problems = read_clinical_tables([a, b])
    assert sorted((p.code, p.patient_id) for p in problems) == [("clinical_conflict", "CHUM-006"),
                                                              ("clinical_value", "CHUM-002")]
    conflict = next(p for p in problems if p.code == "clinical_conflict")
    # not an outcome: a warning naming both files, the first file's value kept
    assert conflict.usable and conflict.file == str(b) and str(a) in conflict.message and "'Age'" in conflict.message
    assert df.set_index("PatientID").loc["CHUM-006", "Age"] == 62
    assert df.set_index("PatientID").loc["CHUM-001", "Age"] == 57  # missing in one file: taken from the other


def test_an_outcome_that_differs_between_files_is_an_error(tmp_path):
    a, b = tmp_path / "task1.csv", tmp_path / "task2.csv"
    pd.DataFrame({"PatientID": ["CHUM-001", "CHUM-002"], "Relapse": [1, 0], "RFS": [300, 900]}).to_csv(a, index=False)
    pd.DataFrame({"PatientID": ["CHUM-001", "CHUM-002"], "Relapse": [1, 1], "RFS": [300, 900]}).to_csv(b, index=False)
    _, problems = read_clinical_tables([a, b])
    [conflict] = [p for p in problems if p.code == "clinical_conflict"]
    assert not conflict.usable and conflict.patient_id == "CHUM-002" and "'Relapse'" in conflict.message


def test_read_clinical_reports_non_numeric_values(tmp_path, caplog):
    p = tmp_path / "c.csv"
    pd.DataFrame({"PatientID": ["X-1", "X-2"], "Age": ["sixty", 61]}).to_csv(p, index=False)
    df = read_clinical(p)
    assert [(q.patient_id, q.code, q.file) for q in df.attrs["problems"]] == [("X-1", "clinical_value", str(p))]
    assert "X-1" in caplog.text and str(p) in caplog.text and "'Age'" in caplog.text


def test_dialects_are_detected(tmp_path):
    # a quoted 2022 header holding a comma, in a semicolon file with decimal commas and a spreadsheet's empty line
    p = tmp_path / "c.csv"
    p.write_text('PatientID;"HPV status (0=-, 1=+)";Weight\nCHUM-001;1;78,5\n;;\nCHUP-002;0;61\n')
    df, reading = read_table(p)
    assert (reading["separator"], reading["decimal"]) == ("semicolon", "comma")
    assert list(df.columns) == ["PatientID", "HPV status (0=-, 1=+)", "Weight"] and list(df["Weight"]) == [78.5, 61]
    assert sniff_dialect(["PatientID\n", "CHUM-001\n"]) == {"separator": ",", "decimal": "."}
    assert sniff_dialect(["a\tb\n", "1,5\t2\n"]) == {"separator": "\t", "decimal": ","}
    p.write_bytes(b"PatientID,Age\nCHUM-001,\xe9\n")  # latin-1, not UTF-8
    with pytest.raises(ValueError, match=str(p)):
        read_table(p)


def test_a_row_without_patient_id_is_reported_not_dropped_silently(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text("PatientID,Age\nCHUM-001,57\n,61\n")
    df = read_clinical(p)
    assert list(df["PatientID"]) == ["CHUM-001"]
    assert [(q.patient_id, q.code, q.file) for q in df.attrs["problems"]] == [("*", "no_patient_id", str(p))]
    assert "Age=61" in df.attrs["problems"][0].message
