"""Checks on the real Kermany copy at ../shared/data/chest_xray: skipped where it is absent,
failed where CXR_REQUIRE_REAL_DATA=1 (CI) says it must be there."""

import numpy as np
import pytest

from cxr.external import materialise_external, read_external, scan_external, write_external_cache
from cxr.images import decode_gray
from cxr.ingest import ingest
from cxr.masks import reference_masks
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


def test_real_external_folder_joins_its_metadata(real_external, tmp_path):
    """The NIH half: 538 images, every one with its patient, age and view from metadata.csv;
    cached at the Kermany cache's geometry."""
    report = materialise_external({"source": "folder", "path": str(real_external)}, 1.0,
                                  tmp_path / "raw")
    assert (report["NORMAL"], report["PNEUMONIA"], report["excluded"]) == (275, 263, [])
    rows = scan_external(tmp_path / "raw")
    assert len(rows) == 538 and not any(r["patient"].startswith("file:") for r in rows)
    assert {r["view"] for r in rows} == {"AP", "PA"}
    assert sum(float(r["age"]) < 18 for r in rows) == 49
    assert len({r["patient"] for r in rows}) < 538  # several images per patient
    write_external_cache(tmp_path / "raw", tmp_path / "cache",
                         {"image_size": 64, "resize": "stretch", "lowpass": 0.0}, workers=2)
    images, cached = read_external(tmp_path / "cache")
    assert images.shape == (538, 64, 64)
    assert [r["file"] for r in cached] == [r["file"] for r in rows]


def test_real_lung_masks_cover_the_images_and_sit_on_dark_lungs(real_data, real_masks):
    """Every Kermany file but the 15 in unmatched.csv has a mask; read at the images'
    geometry, the masked region is darker (air in the lungs) than the same mask transposed or
    upside down would be, on nearly every image of a sample: the masks sit on these images."""
    records, _ = scan(real_data)
    rows = [{"path": r.path, "width": r.width, "height": r.height} for r in records]
    masks, has = reference_masks(rows, real_masks, 64)
    assert len(rows) == 5840 and int(has.sum()) == 5825
    sample = [i for i in range(0, len(rows), 40) if has[i]]
    images = np.stack([decode_gray(real_data / rows[i]["path"], size=64)
                       for i in sample]).astype(float)
    lungs = masks[sample]
    assert 0.2 < lungs.mean() < 0.5

    def mean_inside(m):
        return (images * m).sum((1, 2)) / m.sum((1, 2))

    true = mean_inside(lungs)
    assert np.mean(true < mean_inside(lungs.transpose(0, 2, 1))) > 0.85
    assert np.mean(true < mean_inside(lungs[:, ::-1])) > 0.8
