"""Load params.yaml and reject invalid values before any stage does work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from cxr import MODELS, ROI_MODES, CxrError
from cxr.images import RESIZE_MODES

SAMPLERS = ("none", "weighted")
SOURCES = ("synthetic", "folder", "archive", "mendeley")
THRESHOLD_RULES = ("sensitivity", "youden", "fixed")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "bf16", "fp32")
CNN_SECTIONS = ("baseline", "balanced", "cnn11")
MASK_SOURCES = ("auto", "synthetic", "folder", "v7labs")
EXTERNAL_SOURCES = ("synthetic", "folder")


def get(params: dict, key: str) -> Any:
    """`get(p, "data.synthetic.n_train")`, with an error naming the missing key."""
    node: Any = params
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise CxrError(f"params.yaml: missing `{key}`; add it (see README, 'Params').")
        node = node[part]
    return node


def set_param(params: dict, assignment: str) -> None:
    """Apply one `key.sub=value` override in place, like `dvc exp run -S` (value parsed as YAML)."""
    key, sep, value = assignment.partition("=")
    if not sep:
        raise CxrError(f"override {assignment!r}: expected key=value, e.g. cnn11.epochs=20.")
    *parents, leaf = key.split(".")
    node = get(params, ".".join(parents)) if parents else params
    if not isinstance(node, dict) or leaf not in node:
        raise CxrError(f"override {assignment!r}: params.yaml has no `{key}`.")
    node[leaf] = yaml.safe_load(value)


def _fail(key: str, rule: str, value: Any) -> CxrError:
    return CxrError(f"params.yaml: `{key}` must be {rule} (got {value!r}); "
                    f"fix params.yaml or pass `-S {key}=...`.")


def _choice(p: dict, key: str, choices: tuple[str, ...]) -> None:
    value = get(p, key)
    if value not in choices:
        raise _fail(key, "one of " + ", ".join(choices), value)


def _int(p: dict, key: str, minimum: int = 1) -> None:
    value = get(p, key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(key, f"an integer >= {minimum}", value)


def _number(p: dict, key: str, low: float, high: float, *, open_low: bool = False,
            open_high: bool = False) -> None:
    value = get(p, key)
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok:
        ok = (value > low if open_low else value >= low) and (
            value < high if open_high else value <= high)
    if not ok:
        lo, hi = "(" if open_low else "[", ")" if open_high else "]"
        raise _fail(key, f"a number in {lo}{low}, {high}{hi}", value)


def _augment(p: dict, key: str) -> None:
    _number(p, f"{key}.rotation", 0, 180)
    _number(p, f"{key}.shear", 0, 60)
    _number(p, f"{key}.scale", 0, 1, open_high=True)
    _number(p, f"{key}.translate", 0, 0.5)
    _number(p, f"{key}.hflip", 0, 1)
    _number(p, f"{key}.brightness", 0, 1)
    _number(p, f"{key}.contrast", 0, 1, open_high=True)
    _number(p, f"{key}.gamma", 0, 2)
    _number(p, f"{key}.erase_border", 0, 1)
    _number(p, f"{key}.erase_width", 0, 0.5)


def validate(p: dict) -> dict:
    inf = float("inf")
    _int(p, "seed", 0)
    _choice(p, "sampler", SAMPLERS)
    _choice(p, "device", DEVICES)
    _choice(p, "precision", PRECISIONS)

    _choice(p, "data.source", SOURCES)
    source = p["data"]["source"]
    if source == "folder" and not get(p, "data.path"):
        raise CxrError("params.yaml: `data.path` is empty but data.source is `folder`; set it to "
                       "a Kaggle-layout folder, e.g. -S data.path=/path/to/chest_xray.")
    if source == "archive" and not get(p, "data.archive"):
        raise CxrError("params.yaml: `data.archive` is empty but data.source is `archive`; set "
                       "it to the path of ChestXRay2017.zip.")
    if source == "mendeley" and not get(p, "data.url"):
        raise CxrError("params.yaml: `data.url` is empty but data.source is `mendeley`.")
    if not isinstance(get(p, "data.sha256"), str):
        raise _fail("data.sha256", "a hex string or \"\"", p["data"]["sha256"])
    _int(p, "data.size", 0)
    _number(p, "data.max_excluded_fraction", 0, 1, open_high=True)
    _int(p, "data.synthetic.n_train", 8)
    _int(p, "data.synthetic.n_test", 4)
    _int(p, "data.synthetic.image_size", 16)
    _int(p, "data.synthetic.seed", 0)
    _number(p, "data.synthetic.lesion_gain", 0.1, 10)

    _choice(p, "masks.source", MASK_SOURCES)
    if p["masks"]["source"] == "synthetic" and source != "synthetic":
        raise CxrError(f"params.yaml: masks.source is synthetic but data.source is {source}; "
                       "set -S masks.source=folder -S masks.path=PATH/TO/lung_masks.")
    if p["masks"]["source"] == "folder" and not get(p, "masks.path"):
        raise CxrError("params.yaml: `masks.path` is empty but masks.source is `folder`.")
    if not isinstance(get(p, "masks.sha256"), str):
        raise _fail("masks.sha256", "a hex string or \"\"", p["masks"]["sha256"])
    _choice(p, "external.source", EXTERNAL_SOURCES)
    if p["external"]["source"] == "folder" and not get(p, "external.path"):
        raise CxrError("params.yaml: `external.path` is empty but external.source is `folder`.")
    _int(p, "external.synthetic.n", 8)
    _int(p, "external.synthetic.image_size", 16)
    _int(p, "external.synthetic.seed", 0)
    _int(p, "segment.image_size", 8)
    _int(p, "segment.width", 2)
    _int(p, "segment.depth", 1)
    _int(p, "segment.epochs")
    _int(p, "segment.batch_size")
    _number(p, "segment.lr", 0, inf, open_low=True)
    if not isinstance(get(p, "segment.hflip"), bool):
        raise _fail("segment.hflip", "true or false", p["segment"]["hflip"])
    _int(p, "segment.seed", 0)

    _number(p, "prepare.val_fraction", 0, 1, open_low=True, open_high=True)
    _int(p, "prepare.seed", 0)
    _int(p, "prepare.image_size", 32)
    _int(p, "prepare.workers", 0)
    _choice(p, "prepare.resize", RESIZE_MODES)
    _number(p, "prepare.lowpass", 0, 10)
    if not isinstance(get(p, "prepare.equalize"), bool):
        raise _fail("prepare.equalize", "true or false", p["prepare"]["equalize"])
    _choice(p, "prepare.roi", ROI_MODES)
    _number(p, "prepare.roi_margin", 0, 0.5)

    for section in (*CNN_SECTIONS, "resnet34"):
        if section != "baseline":  # the baseline's sampler is the top-level `sampler`
            _choice(p, f"{section}.sampler", SAMPLERS)
        _int(p, f"{section}.image_size", 32)
        if p[section]["image_size"] > p["prepare"]["image_size"]:
            raise CxrError(f"params.yaml: `{section}.image_size` is {p[section]['image_size']}, "
                           f"larger than the cache (`prepare.image_size`: "
                           f"{p['prepare']['image_size']}); raise prepare.image_size or lower "
                           f"{section}.image_size.")
    for section in CNN_SECTIONS:
        _int(p, f"{section}.epochs")
        _int(p, f"{section}.batch_size")
        _number(p, f"{section}.lr", 0, inf, open_low=True)
        _number(p, f"{section}.weight_decay", 0, inf)
        _int(p, f"{section}.width")
        _number(p, f"{section}.label_smoothing", 0, 1, open_high=True)
    _number(p, "cnn11.dropout", 0, 1, open_high=True)
    _augment(p, "cnn11.augment")

    if not isinstance(get(p, "resnet34.weights"), str) or not p["resnet34"]["weights"]:
        raise _fail("resnet34.weights", "none, imagenet or a path to a state_dict",
                    p["resnet34"]["weights"])
    _int(p, "resnet34.batch_size")
    _number(p, "resnet34.weight_decay", 0, inf)
    _number(p, "resnet34.label_smoothing", 0, 1, open_high=True)
    for phase in ("frozen", "unfrozen"):
        _int(p, f"resnet34.{phase}.epochs")
        _number(p, f"resnet34.{phase}.max_lr", 0, inf, open_low=True)
    _augment(p, "resnet34.augment")

    _choice(p, "evaluate.threshold", THRESHOLD_RULES)
    _number(p, "evaluate.target_sensitivity", 0, 1, open_low=True, open_high=True)
    _int(p, "evaluate.n_boot")
    if get(p, "evaluate.tta") not in (True, False, "auto"):
        raise _fail("evaluate.tta", "auto, true or false", p["evaluate"]["tta"])
    box = get(p, "audit.box")
    if not (isinstance(box, list) and len(box) == 4
            and all(isinstance(v, int | float) and 0 <= v <= 1 for v in box)
            and box[0] < box[2] and box[1] < box[3]):
        raise _fail("audit.box", "[top, left, bottom, right], fractions of the side with "
                    "top < bottom and left < right", box)
    _number(p, "audit.band", 0, 0.5, open_low=True, open_high=True)
    _int(p, "audit.examples")
    if not isinstance(get(p, "gate.metric"), str):
        raise _fail("gate.metric", "a key of metrics/<model>.json such as "
                    "val_in_sample.log_loss", p["gate"]["metric"])
    _choice(p, "gate.direction", ("higher", "lower"))
    _choice(p, "gate.model", ("best", *MODELS))
    _number(p, "gate.tolerance", 0, 1)
    return p


def load_params(path: str | Path = "params.yaml") -> dict:
    path = Path(path)
    if not path.is_file():
        raise CxrError(f"{path}: not found; run from the project root, where params.yaml is.")
    with path.open() as f:
        params = yaml.safe_load(f)
    if not isinstance(params, dict):
        raise CxrError(f"{path}: expected a YAML mapping of params.")
    return validate(params)
