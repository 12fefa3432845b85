import sys
from pathlib import Path

import pytest
import yaml

from cxr import CxrError
from cxr.cache import write_cache
from cxr.split import assign_val, scan
from cxr.synthetic import generate

from conftest import ROOT, tiny_overrides

sys.path.insert(0, str(ROOT / "benchmarks"))
from recipes import main  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("recipes")
    generate(root / "raw", n_train=80, n_test=32, image_size=48, seed=0)
    records, _ = scan(root / "raw")
    assign_val(records, 0.25, 42)
    (root / "cache").mkdir()
    write_cache(records, root / "raw", root / "cache", 48, 1)
    params = tiny_overrides(yaml.safe_load((ROOT / "params.yaml").read_text()))
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root / "cache", root / "params.yaml"


def test_variants_are_trained_and_scored_reproducibly(setup, tmp_path):
    cache, params = setup
    args = ["baseline", "", "baseline.lr=0.03", "--seeds", "1", "--data", str(cache),
            "--params", str(params), "--out", str(tmp_path / "runs.jsonl")]
    first, varied = main(args)
    assert (first["variant"], varied["variant"]) == ("", "baseline.lr=0.03")
    for run in (first, varied):
        for key in ("val_roc_auc", "val_log_loss", "test_accuracy", "test_roc_auc"):
            assert run[key] >= 0 and (key == "val_log_loss" or run[key] <= 1)
    assert first["val_log_loss"] != varied["val_log_loss"]  # the override reached training
    again = main(args[:2] + args[3:-2])[0]
    assert {k: v for k, v in again.items() if k != "train_s"} == {
        k: v for k, v in first.items() if k != "train_s"}
    assert len((tmp_path / "runs.jsonl").read_text().splitlines()) == 2


def test_bad_override_names_the_key(setup):
    cache, params = setup
    with pytest.raises(CxrError, match="cnn11.epochz"):
        main(["cnn11", "cnn11.epochz=3", "--data", str(cache), "--params", str(params)])
    with pytest.raises(CxrError, match="larger than the cache"):
        main(["cnn11", "cnn11.image_size=64", "--data", str(cache), "--params", str(params)])
