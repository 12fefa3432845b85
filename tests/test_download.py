import hashlib
import io
import re
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from cxr import CxrError
from cxr.acquire import download, materialise, safe_extract
from cxr.masks import masks_from_v7labs, read_mask

from helpers import kaggle_folder, zip_of


class Server:
    """A loopback HTTP server for one payload; honours Range; can cut the first response."""

    def __init__(self, payload: bytes, cut_first: bool = False, redirect: bool = False,
                 honour_range: bool = True, content_type: str = "application/zip"):
        self.payload, self.cut, self.ranges = payload, cut_first, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if redirect and self.path == "/file_downloaded":  # as Mendeley's link does
                    self.send_response(302)
                    self.send_header("Location", "/bucket/ChestXRay2017.zip?signature=x")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                header = self.headers.get("Range") if honour_range else None
                outer.ranges.append(self.headers.get("Range"))
                start = int(header.split("=")[1].split("-")[0]) if header else 0
                body = outer.payload[start:]
                self.send_response(206 if header else 200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                if header:
                    self.send_header("Content-Range",
                                     f"bytes {start}-{len(outer.payload) - 1}/{len(outer.payload)}")
                self.end_headers()
                if outer.cut:
                    outer.cut = False
                    self.wfile.write(body[: len(body) // 2])
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/file_downloaded"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def dataset_zip(tmp_path):
    folder = kaggle_folder(tmp_path / "kaggle")
    return zip_of(folder, extra={"__MACOSX/ChestXRay2017/._x.jpeg": b"junk",
                                 "ChestXRay2017/chest_xray/train/NORMAL/._IM-0.jpeg": b"junk"})


def data_params(url, archive, sha256="", size=0):
    return {"source": "mendeley", "url": url, "archive": str(archive), "sha256": sha256,
            "size": size, "max_excluded_fraction": 0.01}


def test_full_download_verifies_and_extracts(tmp_path, dataset_zip):
    server = Server(dataset_zip)
    try:
        digest = hashlib.sha256(dataset_zip).hexdigest()
        archive = tmp_path / "dl" / "ChestXRay2017.zip"
        report = materialise(data_params(server.url, archive, digest, len(dataset_zip)),
                             tmp_path / "raw" / "chest_xray", workers=1)
    finally:
        server.close()
    assert archive.read_bytes() == dataset_zip
    assert report["accepted"] == 16 and report["excluded"] == 0
    assert sorted(p.name for p in (tmp_path / "raw" / "chest_xray").iterdir()) == ["test", "train"]


def test_interrupted_download_resumes_with_range(tmp_path, dataset_zip, capsys):
    server = Server(dataset_zip, cut_first=True)
    dest = tmp_path / "ChestXRay2017.zip"
    try:
        with pytest.raises(CxrError, match="Run `dvc repro` again to resume"):
            download(server.url, dest)
        part = dest.with_name(dest.name + ".part")
        assert 0 < part.stat().st_size < len(dataset_zip) and not dest.exists()
        download(server.url, dest)
    finally:
        server.close()
    assert dest.read_bytes() == dataset_zip
    assert server.ranges == [None, f"bytes={len(dataset_zip) // 2}-"]
    assert hashlib.sha256(dataset_zip).hexdigest() in capsys.readouterr().out  # pin hint


def test_checksum_mismatch_writes_no_dataset(tmp_path, dataset_zip):
    server = Server(dataset_zip)
    archive = tmp_path / "ChestXRay2017.zip"
    try:
        with pytest.raises(CxrError, match="does not match data.sha256.*data.source=archive"):
            materialise(data_params(server.url, archive, "0" * 64), tmp_path / "raw" / "cx")
    finally:
        server.close()
    assert not archive.exists() and not archive.with_name(archive.name + ".part").exists()
    assert not (tmp_path / "raw" / "cx").exists()
    assert [p.name for p in (tmp_path / "raw").iterdir()] == []


def test_network_failure_names_manual_alternative(tmp_path):
    with pytest.raises(CxrError, match="download ChestXRay2017.zip by hand"):
        download("http://127.0.0.1:9/nothing", tmp_path / "x.zip", timeout=5)


@pytest.mark.parametrize("entry", ["../evil.jpeg", "/abs/evil.jpeg", "a/../../evil.jpeg"])
def test_zip_slip_is_refused(tmp_path, entry):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("chest_xray/train/NORMAL/ok.jpeg", b"x")
        zf.writestr(entry, b"evil")
    archive = tmp_path / "a.zip"
    archive.write_bytes(buf.getvalue())
    target = tmp_path / "out" / "inner"
    target.mkdir(parents=True)
    with pytest.raises(CxrError, match="unsafe entry"):
        safe_extract(archive, target)
    assert not list(tmp_path.rglob("evil.jpeg"))


def mendeley_zip(tmp_path) -> bytes:
    """The layout of Mendeley's ChestXRay2017.zip: chest_xray/{train,test} at the top, no val,
    with __MACOSX/ entries and .DS_Store files."""
    folder = kaggle_folder(tmp_path / "mendeley")
    return zip_of(folder, prefix="chest_xray/", extra={
        "__MACOSX/chest_xray/train/NORMAL/._IM-000.jpeg": b"junk",
        "chest_xray/.DS_Store": b"junk", "chest_xray/train/.DS_Store": b"junk"})


def test_mendeley_layout_behind_a_redirect(tmp_path):
    payload = mendeley_zip(tmp_path)
    server = Server(payload, redirect=True)
    archive = tmp_path / "dl" / "ChestXRay2017.zip"
    try:
        report = materialise(data_params(server.url, archive, hashlib.sha256(payload).hexdigest(),
                                         len(payload)), tmp_path / "raw" / "chest_xray", workers=1)
    finally:
        server.close()
    assert archive.read_bytes() == payload
    assert report["accepted"] == 16 and report["excluded"] == 0
    assert report["counts"]["train"] == {"NORMAL": 4, "PNEUMONIA": 4}


def test_server_ignoring_range_restarts_instead_of_appending(tmp_path, dataset_zip):
    server = Server(dataset_zip, cut_first=True, honour_range=False)
    dest = tmp_path / "ChestXRay2017.zip"
    try:
        with pytest.raises(CxrError, match="resume"):
            download(server.url, dest)
        download(server.url, dest, hashlib.sha256(dataset_zip).hexdigest(), len(dataset_zip))
    finally:
        server.close()
    assert server.ranges == [None, f"bytes={len(dataset_zip) // 2}-"]  # asked, answered 200
    assert dest.read_bytes() == dataset_zip


def test_size_mismatch_deletes_the_download(tmp_path, dataset_zip):
    server = Server(dataset_zip)
    dest = tmp_path / "dl" / "ChestXRay2017.zip"
    try:
        with pytest.raises(CxrError, match=f"expected {len(dataset_zip) + 1} \\(data.size\\)"):
            download(server.url, dest, size=len(dataset_zip) + 1)
    finally:
        server.close()
    assert list(dest.parent.iterdir()) == []


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "application/octet-stream"])
def test_an_html_page_instead_of_the_zip_is_refused(tmp_path, content_type):
    server = Server(b"<!DOCTYPE html><html><body>Sign in</body></html>", content_type=content_type)
    dest = tmp_path / "ChestXRay2017.zip"
    try:
        with pytest.raises(CxrError, match="HTML page|not a zip archive"):
            download(server.url, dest)
    finally:
        server.close()
    assert list(tmp_path.iterdir()) == []


def test_an_archive_already_downloaded_is_verified_not_fetched(tmp_path, dataset_zip, capsys):
    server = Server(dataset_zip)
    dest = tmp_path / "ChestXRay2017.zip"
    dest.write_bytes(dataset_zip)
    try:
        download(server.url, dest, hashlib.sha256(dataset_zip).hexdigest(), len(dataset_zip))
        with pytest.raises(CxrError, match="does not match data.sha256"):
            download(server.url, dest, "0" * 64)
    finally:
        server.close()
    assert server.ranges == []


@pytest.mark.parametrize("source", ["mendeley", "archive"])
def test_default_params_pin_the_download_and_enforce_it(tmp_path, dataset_zip, default_params,
                                                         source):
    """The defaults pin a size and a SHA-256 (of Mendeley V2's ChestXRay2017.zip; the value
    itself can only be checked against the real download, which this machine cannot reach),
    and the pins are in force: any other bytes, downloaded or local, are refused and leave
    nothing behind. A test comparing the pin with a copy of itself would prove nothing."""
    data = {**default_params["data"], "source": source}
    assert re.fullmatch(r"[0-9a-f]{64}", data["sha256"]) and data["size"] > 10**9
    archive = tmp_path / "dl" / "ChestXRay2017.zip"
    server = Server(dataset_zip)
    try:
        if source == "archive":
            archive.parent.mkdir()
            archive.write_bytes(dataset_zip)
        with pytest.raises(CxrError, match="data.size|data.sha256"):
            materialise({**data, "url": server.url, "archive": str(archive)},
                        tmp_path / "raw" / "chest_xray", workers=1)
    finally:
        server.close()
    assert not (tmp_path / "raw" / "chest_xray").exists()
    assert source == "archive" or not archive.exists()


def v7labs_zip(masks: dict[str, bytes]) -> bytes:
    """The v7labs repository's layout at a commit: semantic masks named by id, plus noise."""
    buf = io.BytesIO()
    root = "covid-19-xray-dataset-abc123/"
    with zipfile.ZipFile(buf, "w") as zf:
        for mask_id, data in masks.items():
            zf.writestr(f"{root}annotations/all-images-semantic-masks/{mask_id}.png", data)
        zf.writestr(f"{root}README.md", "the repository")
        zf.writestr(f"{root}images/1.png", b"an image we do not want")
    return buf.getvalue()


def png(values) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.array(values, dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("source", ["v7labs", "auto"])
def test_v7labs_masks_are_downloaded_and_placed_by_the_table(tmp_path, source):
    """masks.source=v7labs (and `auto`, with real images): the repository zip comes over HTTP,
    verified; only the table's masks are written, under the Kermany names; Lung (255) reads as
    lung, Ignore (127) not."""
    masks = {"11": png([[255, 127], [0, 255]]), "12": png([[0, 0], [0, 255]])}
    payload = v7labs_zip(masks)
    table = tmp_path / "table.csv"
    table.write_text("kermany_path,mask_id\ntrain/NORMAL/IM-1-0001.jpeg,11\n"
                     "test/PNEUMONIA/person3_virus_7.jpeg,12\ntest/NORMAL/IM-9-0001.jpeg,99\n")
    kaggle = kaggle_folder(tmp_path / "kaggle")
    server = Server(payload)
    try:
        cfg = {"source": source, "url": server.url, "archive": str(tmp_path / "dl" / "v7.zip"),
               "sha256": hashlib.sha256(payload).hexdigest(), "table": str(table), "path": ""}
        data = {"source": "folder", "path": str(kaggle), "max_excluded_fraction": 0.0}
        report = materialise(data, tmp_path / "raw", 1, cfg, tmp_path / "masks")
    finally:
        server.close()
    assert report["lung_masks"] == {"source": "v7labs", "files": 2}  # id 99 is not there
    written = sorted(p.relative_to(tmp_path / "masks").as_posix()
                     for p in (tmp_path / "masks").rglob("*") if p.is_file())
    assert written == ["test/PNEUMONIA/person3_virus_7.png", "train/NORMAL/IM-1-0001.png"]
    lung = read_mask(tmp_path / "masks/train/NORMAL/IM-1-0001.png", 2, 2, 2)
    assert lung.tolist() == [[True, False], [False, True]]


def test_v7labs_table_rows_cannot_write_outside(tmp_path):
    (tmp_path / "v7.zip").write_bytes(v7labs_zip({"11": png([[255]])}))
    table = tmp_path / "table.csv"
    table.write_text("kermany_path,mask_id\n../../etc/NORMAL/x.jpeg,11\n")
    with pytest.raises(CxrError, match="is not <split>/<CLASS>/<file>"):
        masks_from_v7labs(tmp_path / "v7.zip", table, tmp_path / "masks")
    assert not (tmp_path / "masks").exists()
    table.write_text("kermany_path,mask_id\ntrain/NORMAL/x.jpeg,404\n")
    with pytest.raises(CxrError, match="none of the 1 masks"):
        masks_from_v7labs(tmp_path / "v7.zip", table, tmp_path / "masks")
