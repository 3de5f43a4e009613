import pandas as pd

from hecktor_nnunet.io.clinical import read_clinical, read_clinical_tables


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
    assert df.set_index("PatientID").loc["CHUM-001", "Age"] == 57  # missing in one file: taken from the other


def test_read_clinical_reports_non_numeric_values(tmp_path, caplog):
    p = tmp_path / "c.csv"
    pd.DataFrame({"PatientID": ["X-1", "X-2"], "Age": ["sixty", 61]}).to_csv(p, index=False)
    df = read_clinical(p)
    assert [(q.patient_id, q.code, q.file) for q in df.attrs["problems"]] == [("X-1", "clinical_value", str(p))]
    assert "X-1" in caplog.text and str(p) in caplog.text and "'Age'" in caplog.text
