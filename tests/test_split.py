from collections import Counter

import pytest

from cxr import CxrError
from cxr.split import Record, assign_val, link_groups, parse_name, split_report


@pytest.mark.parametrize("stem, label, patient, pathogen", [
    ("person1_bacteria_1", 1, "person1", "bacterial"),
    ("person1000_virus_1681", 1, "person1000", "viral"),
    ("IM-0115-0001", 0, "IM-0115", "normal"),
    ("IM-0011-0001-0002", 0, "IM-0011", "normal"),
    ("NORMAL2-IM-0381-0001", 0, "NORMAL2-IM-0381", "normal"),
    ("scan_42", 1, None, "unknown"),
])
def test_parse_name(stem, label, patient, pathogen):
    assert parse_name(stem, label) == (patient, pathogen)


def records(n_patients: int = 120) -> list[Record]:
    out = []
    for i in range(n_patients):
        label = int(i % 4 != 0)  # 1:3 NORMAL:PNEUMONIA
        for k in range(1 + i % 3):
            out.append(Record(f"train/x/p{i}_{k}.jpeg", label, "train", f"p{i}",
                              "bacterial" if label else "normal"))
    out += [Record(f"test/x/t{i}.jpeg", i % 2, "test", f"t{i}", "normal") for i in range(20)]
    return out


def test_split_is_by_patient_stratified_seeded_and_keeps_test():
    recs = records()
    assign_val(recs, 0.2, seed=7)
    by_split = {s: [r for r in recs if r.split == s] for s in ("train", "val", "test")}
    assert {r.patient for r in by_split["train"]}.isdisjoint({r.patient for r in by_split["val"]})
    assert [r.path for r in by_split["test"]] == [f"test/x/t{i}.jpeg" for i in range(20)]
    val_patients = {r.patient for r in by_split["val"]}
    assert 0.15 < len(val_patients) / 120 < 0.25
    normal_share = Counter(r.label for r in by_split["val"])[0] / len(by_split["val"])
    overall = Counter(r.label for r in recs if r.split != "test")[0] / (len(recs) - 20)
    assert abs(normal_share - overall) < 0.08

    again = records()
    assign_val(again, 0.2, seed=7)
    assert [r.split for r in again] == [r.split for r in recs]
    other = records()
    assign_val(other, 0.2, seed=8)
    assert [r.split for r in other] != [r.split for r in recs]

    report = split_report(recs, 0, 0.2)
    assert report["shared_patients_train_val"] == 0
    assert report["train"]["images"] + report["val"]["images"] == len(recs) - 20


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.3, 0.4, 0.6])
def test_val_fraction_is_the_share_asked_for(fraction):
    """Not round(1 / f) folds: 0.3 used to give a third, 0.4 a half."""
    recs = records(300)
    assign_val(recs, fraction, seed=1)
    pool = [r for r in recs if r.split != "test"]
    obtained = sum(r.split == "val" for r in pool) / len(pool)
    assert obtained == pytest.approx(fraction, abs=0.01)
    assert split_report(recs, 0, fraction)["val_fraction"] == {
        "asked": fraction, "obtained": round(obtained, 4)}
    for label in (0, 1):  # stratified: each class gets its share
        cls = [r for r in pool if r.label == label]
        assert sum(r.split == "val" for r in cls) / len(cls) == pytest.approx(fraction, abs=0.02)


def test_a_fraction_that_empties_a_class_is_refused():
    recs = records(8)  # two NORMAL patient groups
    with pytest.raises(CxrError, match="prepare.val_fraction=0.01 leaves no NORMAL images in val"):
        assign_val(recs, 0.01, seed=0)


def test_exact_duplicates_of_different_patients_stay_on_one_side():
    recs = records(200)
    pool = [r for r in recs if r.split != "test"]
    # 40 pairs of byte-identical images filed under two different patients each
    for k in range(40):
        a, b = pool[k * 4], pool[k * 4 + 180]
        a.sha256 = b.sha256 = f"dup{k}"
    groups = link_groups(pool)
    assert all(groups[k * 4] == groups[k * 4 + 180] for k in range(40))
    for seed in range(5):
        for r in pool:
            r.split = "train"
        assign_val(recs, 0.2, seed)
        assert all(pool[k * 4].split == pool[k * 4 + 180].split for k in range(40))
        report = split_report(recs, 0, 0.2)["duplicate_groups"]
        assert report == {"total": 40, "across_train_val": 0, "across_trainval_test": 0}


def test_duplicates_reaching_into_test_are_reported_and_test_is_kept():
    recs = records(60)
    recs[0].sha256 = recs[-1].sha256 = "same"  # a train image copied into test
    assign_val(recs, 0.2, seed=0)
    assert recs[-1].split == "test"
    assert split_report(recs, 0, 0.2)["duplicate_groups"]["across_trainval_test"] == 1
