"""Deterministic chest-X-ray-like phantoms in the Kaggle layout, for running anywhere offline.

Each synthetic patient has fixed anatomy (thorax, lungs, heart, spine, ribs, diaphragm) and
one to three images that differ in pose and exposure. PNEUMONIA images add consolidations:
lobar (bacterial) or patchy and bilateral (viral), some faint. NORMAL images carry faint
vascular markings of similar size, so the classes overlap. The test split is drawn with
noisier, lower-contrast exposures, so that validation scores run higher than test scores.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# Kermany train NORMAL:PNEUMONIA is 1341:3875; test is 234:390; bacterial:viral about 2:1.
TRAIN_NORMAL_FRACTION = 1341 / (1341 + 3875)
TEST_NORMAL_FRACTION = 234 / (234 + 390)
BACTERIAL_FRACTION = 2 / 3
DOMAINS = {  # exposure statistics per split: (noise sd, contrast, brightness shift)
    "train": (0.025, 1.0, 0.0),
    "test": (0.045, 0.85, 0.04),
    "external": (0.06, 0.6, 0.12),  # the second hospital: flatter, brighter, noisier
}
PORTABLE_LINES = (3, 0.3)  # AP films at the second hospital: tubes and leads (count, opacity)
EXTERNAL_AP = {"NORMAL": 0.7, "PNEUMONIA": 0.4}  # share of AP views per class, as at NIH


def _ellipse(x: np.ndarray, y: np.ndarray, cx: float, cy: float, rx: float, ry: float):
    return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2


def _anatomy(rng: np.random.Generator) -> dict:
    return {
        "lung_rx": rng.uniform(0.24, 0.31), "lung_ry": rng.uniform(0.48, 0.58),
        "lung_dx": rng.uniform(0.34, 0.42), "heart_r": rng.uniform(0.18, 0.26),
        "dome": rng.uniform(0.38, 0.50), "rib_gap": rng.uniform(0.11, 0.14),
        "tissue": rng.uniform(0.42, 0.52), "marker_left": bool(rng.random() < 0.5),
    }


def _blobs(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, n: int,
           sigma: tuple[float, float], amp: tuple[float, float], lungs: list) -> np.ndarray:
    """Sum of `n` elongated Gaussian blobs centred inside the given lung ellipses."""
    out = np.zeros_like(x)
    for _ in range(n):
        cx, cy, rx, ry = lungs[rng.integers(len(lungs))]
        t, r = rng.uniform(0, 2 * np.pi), np.sqrt(rng.uniform(0, 0.7))
        bx, by = cx + r * rx * np.cos(t), cy + r * ry * np.sin(t)
        sx, sy = rng.uniform(*sigma), rng.uniform(*sigma)
        out += rng.uniform(*amp) * np.exp(-0.5 * (((x - bx) / sx) ** 2 + ((y - by) / sy) ** 2))
    return out


def render(rng: np.random.Generator, anatomy: dict, size: int, pathogen: str | None,
           split: str, lesion_gain: float = 1.0, ap: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """One uint8 (size, size) phantom and its lung mask (bool, same geometry); `pathogen` is
    None, "bacteria" or "virus"; `lesion_gain` multiplies the consolidations' opacity (not the
    NORMAL markings'). `split="external"` renders the second hospital: its exposure, a marker
    at the bottom, and `ap` (portable) views with the heart magnified and thin bright lines
    (tubes, leads) across the chest, which a model reading bright streaks in the lungs as
    consolidation mistakes for pneumonia."""
    a = anatomy
    angle, scale = np.deg2rad(rng.uniform(-5, 5)), rng.uniform(0.92, 1.06)
    shift = rng.uniform(-0.05, 0.05, size=2)
    g = np.linspace(-1, 1, size)
    gx, gy = np.meshgrid(g, g)
    x = (np.cos(angle) * (gx - shift[0]) + np.sin(angle) * (gy - shift[1])) / scale
    y = (-np.sin(angle) * (gx - shift[0]) + np.cos(angle) * (gy - shift[1])) / scale

    img = np.full_like(x, 0.06)
    body = _ellipse(x, y, 0, 0.08, 0.86, 1.05) < 1
    img[body] = a["tissue"]
    dome = a["dome"] + 0.35 * (np.abs(x) - a["lung_dx"]) ** 2  # diaphragm, highest mid-lung
    lungs = [(-a["lung_dx"], -0.08, a["lung_rx"], a["lung_ry"]),
             (a["lung_dx"], -0.08, a["lung_rx"] * 0.95, a["lung_ry"] * 0.97)]
    lung = np.zeros_like(body)
    for cx, cy, rx, ry in lungs:
        lung |= _ellipse(x, y, cx, cy, rx, ry) < 1
    lung &= y < dome
    img[lung] = 0.17
    img[body & (y >= dome)] = a["tissue"] + 0.12  # abdomen below the domes
    img[(np.abs(x) < 0.12) & (y > -0.72) & body] = a["tissue"] + 0.1  # mediastinum
    heart_r = a["heart_r"] * (1.15 if ap else 1.0)
    heart = _ellipse(x, y, 0.1, 0.3, heart_r * 1.25, heart_r) < 1
    img[heart] = a["tissue"] + 0.15
    img[(np.abs(x) < 0.055) & body] += 0.12  # spine
    for k in range(10):  # posterior ribs: curved bright bands across the thorax
        centre = -0.75 + k * a["rib_gap"] + 0.22 * x**2
        img[(np.abs(y - centre) < 0.018) & (np.abs(x) < 0.8) & body] += 0.07

    if pathogen == "bacteria":  # lobar: one or two large dense areas
        lesion = _blobs(rng, x, y, rng.integers(1, 3), (0.08, 0.2), (0.08, 0.4), lungs[:1]
                        if rng.random() < 0.5 else lungs[1:])
    elif pathogen == "virus":  # patchy, bilateral, often faint
        lesion = _blobs(rng, x, y, rng.integers(3, 8), (0.04, 0.1), (0.06, 0.25), lungs)
    else:  # vascular markings and overlapping soft tissue: faint, small
        lesion = _blobs(rng, x, y, rng.integers(0, 5), (0.02, 0.05), (0.02, 0.08), lungs)
    img += lesion * lung * (lesion_gain if pathogen else 1.0)

    marker_x = -0.85 if a["marker_left"] else 0.7  # burned-in side marker: an "L" glyph
    top = 0.78 if split == "external" else -0.92
    img[(gx > marker_x) & (gx < marker_x + 0.04) & (gy > top) & (gy < top + 0.14)] = 0.95
    img[(gx > marker_x) & (gx < marker_x + 0.11) & (gy > top + 0.1) & (gy < top + 0.14)] = 0.95

    noise_sd, contrast, brightness = DOMAINS[split]
    gamma = rng.uniform(0.8, 1.25)
    img = np.clip(img * contrast * rng.uniform(0.85, 1.15) + brightness
                  + rng.uniform(-0.05, 0.05), 0, 1) ** gamma
    if split == "external" and ap:
        count, opacity = PORTABLE_LINES
        for _ in range(count):
            x0, slope, bend = rng.uniform(-0.5, 0.5), rng.uniform(-0.6, 0.6), rng.uniform(-0.5, 0.5)
            img += opacity * (np.abs(gx - (x0 + slope * gy + bend * gy**2)) < 0.025)
    img += rng.normal(0, noise_sd * rng.uniform(0.6, 1.4), img.shape)
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8), lung


def _patients(rng: np.random.Generator, n_images: int, normal_fraction: float):
    """Yield (label, pathogen, n_images) per patient until `n_images` are planned."""
    targets = {"NORMAL": round(n_images * normal_fraction)}
    targets["PNEUMONIA"] = n_images - targets["NORMAL"]
    for label, target in targets.items():
        left = target
        while left > 0:
            n = min(left, int(rng.choice([1, 1, 1, 2, 2, 3])))
            pathogen = None
            if label == "PNEUMONIA":
                pathogen = "bacteria" if rng.random() < BACTERIAL_FRACTION else "virus"
            yield label, pathogen, n
            left -= n


def _write(path: Path, pixels: np.ndarray, **options) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, mode="L").save(path, **options)


def generate(root: str | Path, n_train: int, n_test: int, image_size: int, seed: int,
             lesion_gain: float = 1.0, masks: str | Path | None = None) -> int:
    """Write train/ and test/ under `root` with Kermany-style file names, and each image's lung
    mask under `masks` where given; return the image count."""
    root = Path(root)
    masks = Path(masks) if masks is not None else None
    rng = np.random.default_rng([seed, 20180222])
    count, person = 0, 0
    for split, n, normal_fraction, first_id in (("train", n_train, TRAIN_NORMAL_FRACTION, 1),
                                                 ("test", n_test, TEST_NORMAL_FRACTION, 5001)):
        for label in ("NORMAL", "PNEUMONIA"):
            (root / split / label).mkdir(parents=True, exist_ok=True)
        for patient, (label, pathogen, n_img) in enumerate(
                _patients(rng, n, normal_fraction), start=first_id):
            anatomy = _anatomy(rng)
            prefix = "NORMAL2-" if label == "NORMAL" and rng.random() < 0.3 else ""
            for k in range(n_img):
                if label == "NORMAL":
                    name = f"{prefix}IM-{patient:04d}-0001" + (f"-{k + 1:04d}" if k else "")
                else:
                    person += 1
                    name = f"person{patient}_{pathogen}_{person}"
                pixels, lung = render(rng, anatomy, image_size, pathogen, split, lesion_gain)
                rel = Path(split, label, f"{name}.jpeg")
                _write(root / rel, pixels, quality=92)
                if masks is not None:  # the lung masks' layout: <split>/<CLASS>/<stem>.png
                    _write(masks / rel.with_suffix(".png"), lung.astype(np.uint8) * 255)
                count += 1
    return count


def generate_external(root: str | Path, n: int, image_size: int, seed: int,
                      lesion_gain: float = 1.0) -> int:
    """A second synthetic hospital under `root`: {NORMAL,PNEUMONIA}/*.png and metadata.csv
    (file, label, patient_id, age, sex, view) in the layout of `external.path`. Same anatomy
    and disease signs as `generate`; other exposure, resolution, marker placement, mostly
    adults, and a view (AP/PA) that depends on the class."""
    root = Path(root)
    rng = np.random.default_rng([seed, 20170714])
    rows = []
    for patient, (label, pathogen, n_img) in enumerate(
            _patients(rng, n, TEST_NORMAL_FRACTION), start=1):
        anatomy = _anatomy(rng)
        age, sex = int(rng.integers(8, 90)), str(rng.choice(["F", "M"]))
        for k in range(n_img):
            ap = bool(rng.random() < EXTERNAL_AP[label])
            pixels, _ = render(rng, anatomy, image_size, pathogen, "external", lesion_gain, ap)
            rel = f"{label}/{patient:05d}_{k:03d}.png"
            _write(root / rel, pixels)
            rows.append(f"{rel},{label},{patient},{age},{sex},{'AP' if ap else 'PA'}")
    (root / "metadata.csv").write_text("file,label,patient_id,age,sex,view\n"
                                       + "\n".join(rows) + "\n")
    return len(rows)
