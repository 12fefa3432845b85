import csv

import numpy as np

from cxr.report import compare


def write_predictions(folder, y, p):
    folder.mkdir(parents=True)
    with (folder / "predictions.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "patient", "pathogen", "label", "probability"])
        for i, (label, prob) in enumerate(zip(y, p, strict=True)):
            w.writerow([i, f"p{i // 2}", "normal", label, prob])


def test_compare_flags_a_real_improvement_and_not_a_tie(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    weak = np.clip(0.5 + (y - 0.5) * 0.2 + rng.normal(0, 0.25, 400), 0, 1)
    strong = np.clip(0.5 + (y - 0.5) * 0.8 + rng.normal(0, 0.1, 400), 0, 1)
    write_predictions(tmp_path / "a", y, weak)
    write_predictions(tmp_path / "b", y, strong)
    write_predictions(tmp_path / "c", y, weak)
    t = {"a": 0.5, "b": 0.5, "c": 0.5}
    better = compare("a", "b", tmp_path, t, 200, 0)
    assert better["mcnemar_p"] < 0.001 and better["auc_delta_lo"] > 0
    same = compare("a", "c", tmp_path, t, 200, 0)
    assert same["mcnemar_p"] == 1.0 and same["auc_delta"] == 0
