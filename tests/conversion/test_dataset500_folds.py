"""The two documented conversion routes give the same folds: one default seed."""

import json

from hecktor_nnunet.cli.convert import main as convert_main
from hecktor_nnunet.dataset_conversion import Dataset500_HECKTOR2025 as dataset500
from hecktor_nnunet.demo.synth import generate_release


def test_dataset500_script_and_hecktor_convert_make_the_same_folds(tmp_path, capsys):
    # 14 patients over 7 centres: the seed decides who shares a fold within a centre
    release = tmp_path / "release"
    generate_release(release, 14, size="tiny", seed=4)
    assert dataset500.main([str(release), "-o", str(tmp_path / "script"), "-np", "1"]) == 0
    assert convert_main([str(release), "-d", "500", "-o", str(tmp_path / "cli"),
                         "--splits", "centre-stratified", "--quiet"]) == 0
    capsys.readouterr()
    folder = "Dataset500_HECKTOR2025"
    script = json.loads((tmp_path / "script" / folder / "splits_final.json").read_text())
    cli = json.loads((tmp_path / "cli" / folder / "splits_final.json").read_text())
    assert len(script) == 5 and script == cli
    # and the seed does matter on this release
    assert dataset500.main([str(release), "-o", str(tmp_path / "other"), "-np", "1", "--seed", "12345"]) == 0
    assert json.loads((tmp_path / "other" / folder / "splits_final.json").read_text()) != script
