"""Checks on the real Kermany copy at ../shared/data/chest_xray; skipped where it is absent."""

import pytest

from cxr.ingest import ingest
from cxr.split import assign_val, scan, split_report

from conftest import REAL_DATA

pytestmark = pytest.mark.skipif(not REAL_DATA.is_dir(), reason=f"{REAL_DATA} not present")


def test_real_dataset_ingests_cleanly_and_splits_by_patient(tmp_path):
    report = ingest(REAL_DATA, tmp_path / "raw", max_excluded_fraction=0.01, workers=2)
    assert report["files"] == 5840 and report["accepted"] == 5840 and report["excluded"] == 0
    assert report["counts"]["train"] == {"NORMAL": 1341, "PNEUMONIA": 3875}
    assert report["counts"]["test"] == {"NORMAL": 234, "PNEUMONIA": 390}
    assert report["duplicates"]["groups"] == 30
    assert report["duplicates"]["groups_crossing_train_test"] == 0

    records, unknown = scan(tmp_path / "raw")
    assert unknown == 0
    assign_val(records, 0.2, seed=42)
    split = split_report(records, unknown)
    assert split["shared_patients_train_val"] == 0
    assert split["test"]["images"] == 624
    assert 0.17 < split["val"]["images"] / 5216 < 0.23
    assert split["pathogens"]["bacterial"] + split["pathogens"]["viral"] == 3875 + 390
