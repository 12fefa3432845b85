from collections import Counter

import pytest

from cxr.split import Record, assign_val, parse_name, split_report


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

    report = split_report(recs, 0)
    assert report["shared_patients_train_val"] == 0
    assert report["train"]["images"] + report["val"]["images"] == len(recs) - 20
