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
from cxr.ingest import ingest
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


def verify(path: Path, sha256: str, size: int) -> None:
    """Check size and hash; with no expected hash, print the computed one so the user can pin it."""
    actual_size = path.stat().st_size
    if size and actual_size != size:
        raise CxrError(f"{path}: {actual_size} bytes, expected {size} (data.size); the file is "
                       f"incomplete or not the dataset. Delete it and retry, or {MANUAL}.")
    actual = sha256_of(path)
    if not sha256:
        print(f"data: {path} has SHA-256 {actual}; pin it with -S data.sha256={actual} "
              "(or in params.yaml) so later downloads are verified.")
    elif actual != sha256.lower():
        raise CxrError(f"{path}: SHA-256 {actual} does not match data.sha256={sha256}; the "
                       f"download is corrupt or the file changed. Delete it and retry, or "
                       f"{MANUAL}.")


def download(url: str, dest: Path, sha256: str = "", size: int = 0, timeout: float = 60) -> Path:
    """Download `url` to `dest` through `dest.part`, resuming a partial file with HTTP Range.

    `dest` appears only once complete and verified; a failed download keeps the partial file
    for the next try, and a checksum failure deletes it.
    """
    if dest.exists():
        verify(dest, sha256, size)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # follows redirects
            if response.headers.get_content_type() == "text/html":
                raise CxrError(f"{url} answered with an HTML page, not the zip (a login, cookie "
                               f"or error page?); nothing was saved. {MANUAL[0].upper()}"
                               f"{MANUAL[1:]}.")
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
                       f"or {MANUAL}.") from None
    try:
        with part.open("rb") as f:
            if f.read(4) != b"PK\x03\x04":
                raise CxrError(f"{url} sent a file that is not a zip archive; it was deleted. "
                               f"Check data.url, or {MANUAL}.")
        verify(part, sha256, size)
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


def materialise(data: dict, dst: str | Path, workers: int = 0) -> dict:
    """Produce the validated Kaggle layout at `dst` from `data.source`; return the ingest report."""
    source, limit = data["source"], data["max_excluded_fraction"]
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if source == "folder":
        report = ingest(Path(data["path"]), dst, limit, workers)
    else:
        with tempfile.TemporaryDirectory(dir=dst.parent, prefix=".staging-") as staging:
            staging = Path(staging)
            if source == "synthetic":
                syn = data["synthetic"]
                generate(staging, syn["n_train"], syn["n_test"], syn["image_size"], syn["seed"],
                         syn["lesion_gain"])
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
    return report
