import hashlib

import numpy as np
from PIL import Image

from cxr.split import parse_name
from cxr.synthetic import generate


def digest(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.jpeg"))}


def test_generator_is_deterministic_and_writes_kaggle_layout(tmp_path):
    assert generate(tmp_path / "a", 60, 24, 48, seed=3) == 84
    generate(tmp_path / "b", 60, 24, 48, seed=3)
    generate(tmp_path / "c", 60, 24, 48, seed=4)
    a, b, c = digest(tmp_path / "a"), digest(tmp_path / "b"), digest(tmp_path / "c")
    assert a == b and a != c
    assert {k.rsplit("/", 1)[0] for k in a} == {
        "train/NORMAL", "train/PNEUMONIA", "test/NORMAL", "test/PNEUMONIA"}
    n_normal = sum(k.startswith("train/NORMAL") for k in a)
    assert 12 <= n_normal <= 19  # about 1:2.9
    patients = set()
    for key in a:
        split, cls, name = key.split("/")
        patient, pathogen = parse_name(name.removesuffix(".jpeg"), int(cls == "PNEUMONIA"))
        assert patient is not None
        assert (pathogen == "normal") == (cls == "NORMAL")
        patients.add((split, patient))
    assert len(patients) < len(a)  # several images per patient


def test_lesion_gain_changes_only_the_consolidations(tmp_path):
    """Same seed: NORMAL files are byte-identical, PNEUMONIA images get brighter lungs."""
    generate(tmp_path / "g1", 40, 8, 48, seed=5)
    generate(tmp_path / "g2", 40, 8, 48, seed=5, lesion_gain=2.0)
    one, two = digest(tmp_path / "g1"), digest(tmp_path / "g2")
    assert one.keys() == two.keys()
    for key in one:
        assert (one[key] == two[key]) == ("/NORMAL/" in key)
    def total(root):
        return sum(np.asarray(Image.open(p), dtype=np.int64).sum()
                   for p in sorted(root.rglob("PNEUMONIA/*.jpeg")))
    assert total(tmp_path / "g2") > total(tmp_path / "g1")
