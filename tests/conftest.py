import copy
import os
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

REAL_DATA = ROOT.parent / "shared" / "data" / "chest_xray"
REQUIRE_REAL_DATA = "CXR_REQUIRE_REAL_DATA"  # set by .ci/run: absent data fails, never skips


def real_data_or_skip(path: Path) -> Path:
    """`path` if it is a folder; else a skip (a user's machine), or a failure where the
    environment says the data must be there (CI)."""
    if not path.is_dir():
        message = f"{path} not present"
        if os.environ.get(REQUIRE_REAL_DATA) == "1":
            pytest.fail(f"{message}, but {REQUIRE_REAL_DATA}=1 requires it")
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def real_data() -> Path:
    return real_data_or_skip(REAL_DATA)


@pytest.fixture(scope="session")
def real_external() -> Path:
    return real_data_or_skip(REAL_DATA.parent / "external" / "nih_cxr14")


@pytest.fixture(scope="session")
def real_masks() -> Path:
    return real_data_or_skip(REAL_DATA.parent / "lung_masks")


@pytest.fixture(scope="session")
def default_params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.fixture
def params(default_params) -> dict:
    return copy.deepcopy(default_params)


def tiny_overrides(p: dict) -> dict:
    """Shrink params.yaml so the whole pipeline runs in seconds."""
    p["data"]["synthetic"].update(n_train=80, n_test=32, image_size=48)
    # as in the default, prepare and CNN11 ask for more than the phantoms have: the cache and
    # CNN11's input stay at 48 px (never upsampled); the other models resize 48 -> 32 px
    p["prepare"].update(image_size=64, workers=2)
    for section in ("baseline", "balanced", "cnn11"):
        p[section].update(epochs=1, batch_size=16, image_size=32)
    p["cnn11"]["image_size"] = 64
    p["resnet34"].update(batch_size=16, image_size=32)
    p["resnet34"]["frozen"]["epochs"] = 1
    p["resnet34"]["unfrozen"]["epochs"] = 1
    p["evaluate"]["n_boot"] = 20
    p["external"]["synthetic"].update(n=24, image_size=32)
    p["segment"].update(image_size=32, width=4, depth=2, epochs=1)
    return p
