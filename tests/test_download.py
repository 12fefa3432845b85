import hashlib
import io
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cxr import CxrError
from cxr.acquire import download, materialise, safe_extract

from helpers import kaggle_folder, zip_of


class Server:
    """A loopback HTTP server for one payload; honours Range; can cut the first response."""

    def __init__(self, payload: bytes, cut_first: bool = False):
        self.payload, self.cut, self.ranges = payload, cut_first, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                header = self.headers.get("Range")
                outer.ranges.append(header)
                start = int(header.split("=")[1].split("-")[0]) if header else 0
                body = outer.payload[start:]
                self.send_response(206 if header else 200)
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
