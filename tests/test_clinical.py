import pandas as pd

from hecktor_nnunet.clinical import read_clinical_tables


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
