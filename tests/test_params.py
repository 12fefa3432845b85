import copy
import subprocess
import sys

import pytest
import yaml

from cxr import CxrError
from cxr.params import load_params, validate

from conftest import ROOT


def test_default_params_are_valid():
    load_params(ROOT / "params.yaml")


@pytest.mark.parametrize("key, value, message", [
    ("sampler", "balanced", "`sampler` must be one of none, weighted"),
    ("data.source", "kaggle", "`data.source` must be one of"),
    ("baseline.epochs", 0, "`baseline.epochs` must be an integer >= 1"),
    ("resnet34.unfrozen.epochs", -1, "`resnet34.unfrozen.epochs`"),
    ("prepare.val_fraction", 1.0, "`prepare.val_fraction` must be a number in (0, 1)"),
    ("prepare.val_fraction", 0, "`prepare.val_fraction`"),
    ("evaluate.threshold", "median", "`evaluate.threshold`"),
    ("cnn11.image_size", 16, "`cnn11.image_size` must be an integer >= 32"),
    ("resnet34.image_size", 4096, "`resnet34.image_size` is 4096, larger than the cache"),
    ("precision", "fp16", "`precision` must be one of auto, bf16, fp32"),
    ("evaluate.tta", "sometimes", "`evaluate.tta` must be auto, true or false"),
    ("prepare.seed", -1, "`prepare.seed` must be an integer >= 0"),
    ("data.synthetic.seed", "x", "`data.synthetic.seed`"),
])
def test_invalid_params_are_named(params, key, value, message):
    node = params
    *parents, leaf = key.split(".")
    for part in parents:
        node = node[part]
    node[leaf] = value
    with pytest.raises(CxrError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate(params)


def test_folder_source_needs_path(params):
    params["data"].update(source="folder", path="")
    with pytest.raises(CxrError, match="data.path"):
        validate(params)
    del params["data"]["path"]
    with pytest.raises(CxrError, match="missing `data.path`"):
        validate(params)


def test_stage_stops_before_work_on_bad_params(tmp_path, params):
    params["sampler"] = "oversample"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = tmp_path / "raw"
    proc = subprocess.run([sys.executable, "-m", "stages.acquire", "--out", str(out),
                           "--masks", str(tmp_path / "masks"),
                           "--report", str(tmp_path / "r.json")], cwd=tmp_path,
                          env={"PATH": ""}, capture_output=True,
                          text=True)
    assert proc.returncode == 2
    assert "error: params.yaml: `sampler` must be one of none, weighted" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists() and not (tmp_path / "r.json").exists()


def test_masks_and_external_params_are_checked(params):
    params["data"]["source"] = "folder"
    validate(copy.deepcopy(params))  # masks.source auto: v7labs for real images
    params["masks"]["source"] = "synthetic"
    with pytest.raises(CxrError, match="masks.source is synthetic but data.source is folder"):
        validate(copy.deepcopy(params))
    params["masks"]["source"] = "folder"
    params["masks"]["path"] = ""
    with pytest.raises(CxrError, match="`masks.path` is empty"):
        validate(copy.deepcopy(params))
    params["masks"]["source"] = "v7labs"
    params["external"]["source"] = "hospital"
    with pytest.raises(CxrError, match="external.source"):
        validate(copy.deepcopy(params))
    params["external"]["source"] = "synthetic"
    params["segment"]["hflip"] = "yes"
    with pytest.raises(CxrError, match="segment.hflip"):
        validate(copy.deepcopy(params))
