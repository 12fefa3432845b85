"""Checks on the real Kermany copy at ../shared/data/chest_xray: skipped where it is absent,
failed where CXR_REQUIRE_REAL_DATA=1 (CI) says it must be there."""

import pytest

from cxr.ingest import ingest
from cxr.split import assign_val, scan, split_report

from conftest import REQUIRE_REAL_DATA, real_data_or_skip


def test_real_dataset_ingests_cleanly_and_splits_by_patient_and_content(real_data, tmp_path):
    report = ingest(real_data, tmp_path / "raw", max_excluded_fraction=0.01, workers=2)
    assert report["files"] == 5840 and report["accepted"] == 5840 and report["excluded"] == 0
    assert report["counts"]["train"] == {"NORMAL": 1341, "PNEUMONIA": 3875}
    assert report["counts"]["test"] == {"NORMAL": 234, "PNEUMONIA": 390}
    assert report["duplicates"]["groups"] == 30
    assert report["duplicates"]["groups_crossing_train_test"] == 0

    records, unknown = scan(tmp_path / "raw")
    assert unknown == 0
    assign_val(records, 0.2, seed=42)
    split = split_report(records, unknown, 0.2)
    assert split["shared_patients_train_val"] == 0
    assert split["duplicate_groups"]["total"] == 30
    assert split["duplicate_groups"]["across_train_val"] == 0
    assert split["test"]["images"] == 624
    assert split["val_fraction"]["obtained"] == pytest.approx(0.2, abs=0.005)
    assert split["val"]["images"] + split["train"]["images"] == 5216
    assert split["pathogens"]["bacterial"] + split["pathogens"]["viral"] == 3875 + 390


def test_absent_data_skips_for_users_and_fails_where_required(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere"
    monkeypatch.delenv(REQUIRE_REAL_DATA, raising=False)
    with pytest.raises(pytest.skip.Exception):
        real_data_or_skip(missing)
    monkeypatch.setenv(REQUIRE_REAL_DATA, "1")
    with pytest.raises(pytest.fail.Exception, match=REQUIRE_REAL_DATA):
        real_data_or_skip(missing)
    assert real_data_or_skip(tmp_path) == tmp_path
