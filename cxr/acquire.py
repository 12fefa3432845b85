"""Obtain the raw dataset: generate it, copy a folder, or download and extract the Mendeley zip."""

from __future__ import annotations

import hashlib
import http.client
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from cxr import CxrError
from cxr.atomic import atomic_dir
from cxr.ingest import ingest
from cxr.masks import V7LABS_MANUAL, copy_masks, masks_from_v7labs
from cxr.synthetic import generate

MANUAL = ("download ChestXRay2017.zip by hand from https://data.mendeley.com/datasets/"
          "rscbjbr9sj/2 and run with -S data.source=archive -S data.archive=PATH/TO/zip")
CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, sha256: str, size: int, manual: str = MANUAL,
           section: str = "data") -> None:
    """Check size and hash; with no expected hash, print the computed one so the user can pin
    it. `section`: the params section holding `size` and `sha256`, named in the messages."""
    actual_size = path.stat().st_size
    if size and actual_size != size:
        raise CxrError(f"{path}: {actual_size} bytes, expected {size} ({section}.size); the file "
                       f"is incomplete or not the expected file. Delete it and retry, or "
                       f"{manual}.")
    actual = sha256_of(path)
    if not sha256:
        print(f"{section}: {path} has SHA-256 {actual}; pin it with -S {section}.sha256={actual} "
              "(or in params.yaml) so later downloads are verified.")
    elif actual != sha256.lower():
        raise CxrError(f"{path}: SHA-256 {actual} does not match {section}.sha256={sha256}; the "
                       f"download is corrupt or the file changed. Delete it and retry, or "
                       f"{manual}.")


def download(url: str, dest: Path, sha256: str = "", size: int = 0, timeout: float = 60,
             manual: str = MANUAL, section: str = "data") -> Path:
    """Download `url` to `dest` through `dest.part`, resuming a partial file with HTTP Range.

    `dest` appears only once complete and verified; a failed download keeps the partial file
    for the next try, and a checksum failure deletes it.
    """
    if dest.exists():
        verify(dest, sha256, size, manual, section)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # follows redirects
            if response.headers.get_content_type() == "text/html":
                raise CxrError(f"{url} answered with an HTML page, not the zip (a login, cookie "
                               f"or error page?); nothing was saved. {manual[0].upper()}"
                               f"{manual[1:]}.")
            if have and response.status != 206:  # server ignored Range: start over
                have = 0
            total = response.headers.get("Content-Length")
            total = int(total) + have if total is not None else (size or None)
            with part.open("ab" if have else "wb") as f, tqdm(
                    total=total, initial=have, unit="B", unit_scale=True,
                    desc=f"download {dest.name}") as bar:
                while block := response.read(CHUNK):
                    f.write(block)
                    bar.update(len(block))
            if total is not None and part.stat().st_size < total:
                raise OSError(f"connection closed at {part.stat().st_size} of {total} bytes")
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        raise CxrError(f"download of {url} failed: {err}. Run `dvc repro` again to resume "
                       f"from {part} ({part.stat().st_size if part.exists() else 0} bytes), "
                       f"or {manual}.") from None
    try:
        with part.open("rb") as f:
            if f.read(4) != b"PK\x03\x04":
                raise CxrError(f"{url} sent a file that is not a zip archive; it was deleted. "
                               f"Check {section}.url, or {manual}.")
        verify(part, sha256, size, manual, section)
    except CxrError:
        part.unlink()
        raise
    part.rename(dest)
    return dest


def safe_extract(archive: Path, target: Path) -> int:
    """Extract a zip, refusing absolute or parent-relative entries; skip macOS metadata."""
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as err:
        raise CxrError(f"{archive}: not a readable zip ({err}); delete it and download again, "
                       f"or {MANUAL}.") from None
    with zf:
        members = []
        for info in zf.infolist():
            name = PurePosixPath(info.filename.replace("\\", "/"))
            if name.is_absolute() or ".." in name.parts or info.filename[1:2] == ":":
                raise CxrError(f"{archive}: unsafe entry {info.filename!r} would be written "
                               "outside the target folder; refusing to extract this archive.")
            if "__MACOSX" in name.parts or name.name.startswith("._") or info.is_dir():
                continue
            members.append((info, name))
        for info, name in tqdm(members, desc="extract", unit="file", mininterval=2):
            out = target.joinpath(*name.parts)
            out.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, out.open("wb") as dst:
                shutil.copyfileobj(src, dst)
    return len(members)


def materialise(data: dict, dst: str | Path, workers: int = 0, masks: dict | None = None,
                masks_dst: str | Path | None = None) -> dict:
    """Produce the validated Kaggle layout at `dst` from `data.source`, and the lung masks at
    `masks_dst` from `masks.source`; return the ingest report."""
    source, limit = data["source"], data["max_excluded_fraction"]
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if masks is not None and masks["source"] == "auto":  # the phantoms' own, or the v7labs set
        masks = {**masks, "source": "synthetic" if source == "synthetic" else "v7labs"}
    generated_masks = masks is not None and masks["source"] == "synthetic"
    if generated_masks and source != "synthetic":
        raise CxrError(f"masks.source=synthetic needs data.source=synthetic (it is {source}); "
                       "for real images use -S masks.source=folder -S masks.path=PATH/TO/"
                       "lung_masks (README, Real data).")
    if masks is not None and masks["source"] == "folder":
        report_masks = copy_masks(masks["path"], masks_dst)
    if masks is not None and masks["source"] == "v7labs":
        archive = download(masks["url"], Path(masks["archive"]), masks["sha256"],
                           manual=V7LABS_MANUAL, section="masks")
        report_masks = masks_from_v7labs(archive, masks["table"], masks_dst)
    if source == "folder":
        report = ingest(Path(data["path"]), dst, limit, workers)
    else:
        with tempfile.TemporaryDirectory(dir=dst.parent, prefix=".staging-") as staging:
            staging = Path(staging)
            if source == "synthetic":
                syn = data["synthetic"]
                generate(staging / "images", syn["n_train"], syn["n_test"], syn["image_size"],
                         syn["seed"], syn["lesion_gain"],
                         staging / "masks" if generated_masks else None)
                if generated_masks:
                    with atomic_dir(masks_dst) as tmp:
                        shutil.copytree(staging / "masks", tmp, dirs_exist_ok=True)
                    report_masks = sum(1 for _ in (staging / "masks").glob("*/*/*.png"))
                staging = staging / "images"
            else:
                archive = Path(data["archive"])
                if source == "mendeley":
                    download(data["url"], archive, data["sha256"], data["size"])
                else:
                    if not archive.is_file():
                        raise CxrError(f"data.archive={archive}: file not found; {MANUAL}.")
                    verify(archive, data["sha256"], data["size"])
                safe_extract(archive, staging)
            report = ingest(staging, dst, limit, workers)
            report["source"] = source
    if masks is not None:
        report["lung_masks"] = {"source": masks["source"], "files": report_masks}
    return report
