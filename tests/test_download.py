"""RAVDESS download against a local records API: real zips of real clips over real HTTP (with Range),
and the faults of a real network and disk: a connection dropped mid-file, a server error, a wrong md5,
the downloader killed (SIGKILL) and run again, a local disk that fills up."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from fer_lib.data import cache, download
from fer_lib.paths import DriveLayout

REPO = Path(__file__).resolve().parents[1]
RECORD = "/api/records/1188976"


def build_zips(synthetic_clips) -> dict[str, bytes]:
    """Video_Speech_Actor_0{1,2,3}.zip: one audio-visual clip each, as RAVDESS packs them (Actor_XX/...),
    plus its video-only twin (02-...), which must not be extracted."""
    zips = {}
    for actor in (1, 2, 3):
        clip = next(p for p in synthetic_clips.paths if p.parent.name == f"Actor_{actor:02d}")
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
            zf.write(clip, f"Actor_{actor:02d}/{clip.name}")
            zf.write(clip, f"Actor_{actor:02d}/02{clip.name[2:]}")
        zips[f"Video_Speech_Actor_{actor:02d}.zip"] = buffer.getvalue()
    return zips


class RecordServer:
    """A records API and its files on 127.0.0.1 with Range support, a request log and injectable faults.

    faults[name]: what the next requests for `name` get, in order: "error" (500) or another HTTP status
    (e.g. 503), "drop" (half the body, then the connection closes), "corrupt" (one byte changed).
    throttle[name]: bytes per second.
    """

    def __init__(self, files: dict[str, bytes], shape: str = "list"):
        self.files, self.shape = files, shape
        self.faults: dict[str, list[str]] = {}
        self.throttle: dict[str, int] = {}
        self.log: list[tuple[str, int, int]] = []  # (name, first byte, status)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                server.handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return self.base + RECORD

    def record(self) -> dict:
        entries = [{"key": name, "size": len(data), "checksum": f"md5:{hashlib.md5(data).hexdigest()}",
                    "links": {"self": f"{self.url}/files/{name}/content"}} for name, data in self.files.items()]
        if self.shape == "entries":  # InvenioRDM: a dict of entries, `content` is the download link
            for entry in entries:
                entry["links"] = {"self": f"{self.url}/files/{entry['key']}", "content": entry["links"]["self"]}
            return {"id": 1188976, "files": {"enabled": True, "entries": {e["key"]: e for e in entries}}}
        return {"id": 1188976, "files": entries}

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        path = request.path
        name = "record" if path == RECORD else path.removeprefix(RECORD + "/files/").removesuffix("/content")
        fault = self.faults.get(name, [None]).pop(0) if self.faults.get(name) else None
        if fault == "error" or isinstance(fault, int):
            status = 500 if fault == "error" else fault
            self.log.append((name, 0, status))
            return self._send(request, status, b"server error")
        if name == "record":
            self.log.append((name, 0, 200))
            return self._send(request, 200, json.dumps(self.record()).encode())
        data = self.files[name]
        start = int(request.headers["Range"].split("=")[1].split("-")[0]) if request.headers.get("Range") else 0
        status = 206 if start else 200
        self.log.append((name, start, status))
        body = data[start:]
        if fault == "corrupt":
            body = bytes([body[0] ^ 0xFF]) + body[1:]
        request.send_response(status)
        request.send_header("Content-Length", str(len(body)))
        if status == 206:
            request.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        request.end_headers()
        sent = 0
        limit = len(body) // 2 if fault == "drop" else len(body)
        try:
            while sent < limit:
                step = min(16384, limit - sent)
                request.wfile.write(body[sent : sent + step])
                sent += step
                if self.throttle.get(name):
                    time.sleep(step / self.throttle[name])
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away (killed)
        if fault == "drop":
            request.close_connection = True
            request.connection.shutdown(2)

    @staticmethod
    def _send(request, status: int, body: bytes) -> None:
        request.send_response(status)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    def requests_for(self, name: str) -> list[tuple[int, int]]:
        return [(start, status) for n, start, status in self.log if n == name]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def zips(synthetic_clips):
    return build_zips(synthetic_clips)


@pytest.fixture
def server(zips):
    server = RecordServer(zips)
    yield server
    server.close()


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch):
    monkeypatch.setattr(download, "BACKOFF_S", 0.01)


def run_download(root: Path, source: str, actors: str = "1-3", *extra: str, progress: bool = False) -> int:
    return download.main(["--root", str(root), "--actors", actors, "--source", source, "--workers", "1",
                          *([] if progress else ["--no_progress"]), *extra])


def cached(root: Path) -> list[str]:
    return [c.stem for c in cache.list_clips(DriveLayout.at(root).preprocessed)]


def test_download_then_train(server, tmp_path, capsys):
    """Done when: download actors 1-3 from the local server, then `fer_lib.train` on the same root works."""
    root = tmp_path / "root"
    assert run_download(root, server.url, progress=True) == 0
    out, err = capsys.readouterr()
    assert out.index("CC BY-NC-SA 4.0") < out.index("Livingstone") < out.index("actors already cached")
    bar = err.replace("\r", "\n").splitlines()
    assert [line for line in bar if line.startswith("preprocess: 100%") and "3/3 [" in line]  # the clips the zips hold
    assert not [line for line in bar if "/180 [" in line]  # not 60 x actors
    layout = DriveLayout.at(root)
    assert sorted(p.name for p in layout.preprocessed.glob("*.shard")) == [f"actor_0{a}.shard" for a in (1, 2, 3)]
    assert len(cached(root)) == 3 and all(stem.startswith("01-") for stem in cached(root))
    report = json.loads((layout.preprocessed / "report.json").read_text())
    assert report["skipped_not_problems"] == {"video_only": 3} and report["cached"]["total"] == 3
    assert not list(layout.downloads.glob("*.zip")) and not list(layout.local_ravdess.rglob("*.mp4"))  # deleted
    assert {name for name, _, _ in server.log} == {"record", *server.files}

    before = len(server.log)
    assert run_download(root, server.url) == 0  # again: nothing is downloaded
    assert "actors already cached: 01, 02, 03; to download: none" in capsys.readouterr().out
    assert [name for name, _, _ in server.log[before:]] == ["record"]

    from fer_lib import train

    assert train.main(["--cache_dir", str(layout.preprocessed), "--save_dir", str(root / "runs"), "--config_type",
                       "tiny", "--max_epochs", "1", "--batch_size", "2", "--num_workers", "0"]) == 0
    assert list((root / "runs").glob("*/checkpoints/best"))


def test_dropped_connection_server_errors_and_a_wrong_md5_are_retried(zips, tmp_path, capsys):
    server = RecordServer(zips, shape="entries")  # the current records API shape
    try:
        server.faults = {"record": ["error"], "Video_Speech_Actor_01.zip": ["drop"],
                         "Video_Speech_Actor_02.zip": ["error", "error"], "Video_Speech_Actor_03.zip": ["corrupt"]}
        root = tmp_path / "root"
        summary = download.download(DriveLayout.at(root), (1, 2, 3), server.url, workers=1, progress=False,
                                    verbose=False)
        assert summary["new"] == 3 and summary["problems"] == 0 and len(cached(root)) == 3  # each clip once
        size = len(zips["Video_Speech_Actor_01.zip"])
        (first, _), (resumed, status) = server.requests_for("Video_Speech_Actor_01.zip")
        assert first == 0 and 0 < resumed <= size // 2 and status == 206  # resumed where it dropped, not restarted
        assert server.requests_for("Video_Speech_Actor_02.zip") == [(0, 500), (0, 500), (0, 200)]
        assert server.requests_for("Video_Speech_Actor_03.zip") == [(0, 200), (0, 200)]  # wrong md5: fetched once more
        out = capsys.readouterr().out  # and each fault is told
        assert "the file list of RAVDESS: the server answers 500" in out
        assert "Video_Speech_Actor_01.zip: the connection dropped at" in out and "; resuming" in out
        assert "Video_Speech_Actor_03.zip: its md5 is wrong; downloading it once more" in out
    finally:
        server.close()


def test_a_wrong_md5_twice_stops_with_one_line_naming_the_file(server, tmp_path, capsys):
    root = tmp_path / "root"
    assert run_download(root, server.url, "1") == 0
    shard = cache.shard_path(DriveLayout.at(root).preprocessed, 1)
    stamp = shard.stat().st_mtime_ns
    server.faults = {"Video_Speech_Actor_02.zip": ["corrupt", "corrupt"]}
    capsys.readouterr()

    assert run_download(root, server.url, "1-2") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Video_Speech_Actor_02.zip: its md5 is not" in err[0], err
    assert shard.stat().st_mtime_ns == stamp and cached(root) == [c for c in cached(root) if c.endswith("-01")]
    assert not list(DriveLayout.at(root).downloads.glob("Video_Speech_Actor_02.zip*"))  # nothing of it kept
    assert server.requests_for("Video_Speech_Actor_01.zip") == [(0, 200)]  # the cached actor is not fetched again


def test_killed_mid_download_resumes_and_redoes_nothing(server, tmp_path):
    """A real downloader process, SIGKILLed while actor 2's zip is half there and actor 1 is cached."""
    root = tmp_path / "root"
    layout = DriveLayout.at(root)
    slow = "Video_Speech_Actor_02.zip"
    server.throttle[slow] = 40_000  # bytes/s: ~16 s for this zip, time to kill it midway
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "fer_lib.data.download", "--root", str(root), "--actors", "1-2",
                             "--source", server.url, "--workers", "1", "--no_progress"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    part = layout.downloads / f"{slow}.part"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not (
            cache.shard_path(layout.preprocessed, 1).exists() and part.exists() and part.stat().st_size):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    have = part.stat().st_size
    assert 0 < have < len(server.files[slow]), "the downloader should have been killed mid-file"
    del server.throttle[slow]
    before = len(server.log)

    assert run_download(root, server.url, "1-2") == 0
    after = [(name, start) for name, start, _ in server.log[before:]]
    assert ("Video_Speech_Actor_01.zip", 0) not in after  # cached before the kill: not downloaded again
    assert after[-1] == (slow, have)  # the partial zip resumes where it stopped
    assert len(cached(root)) == 2


def test_a_local_disk_that_fills_up_stops_with_one_line_and_a_rerun_completes(server, tmp_path, small_disk, capsys):
    root = tmp_path / "root"
    assert run_download(root, server.url, "1") == 0  # cached before: must survive the fault
    disk = small_disk(4 << 20)  # the runtime's local disk: room for the downloads, until something fills it
    slow = "Video_Speech_Actor_02.zip"
    server.throttle[slow] = 100_000
    part = disk.path / "downloads" / f"{slow}.part"
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(run_download, root, server.url, "1-2", "--local", str(disk.path))
        while not running.done() and not (part.exists() and part.stat().st_size):
            time.sleep(0.02)
        filler = disk.path / "someone_else.bin"
        with open(filler, "wb") as handle:  # another program fills the disk while the zip downloads
            handle.write(b"\0" * (disk.capacity - disk.used() - len(server.files[slow]) // 4))
        assert running.result() == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0] and "the download stopped" in err[0], err
    assert len(cached(root)) == 1  # nothing earlier lost

    filler.unlink()
    del server.throttle[slow]
    assert run_download(root, server.url, "1-2", "--local", str(disk.path)) == 0
    assert len(cached(root)) == 2
    assert server.requests_for("Video_Speech_Actor_01.zip") == [(0, 200)]


def test_the_records_api_shapes_and_the_budget(zips, tmp_path, capsys):
    server = RecordServer(zips)
    try:
        old = {"files": [{"filename": name, "filesize": len(data), "checksum": hashlib.md5(data).hexdigest(),
                          "links": {"download": f"{server.url}/files/{name}/content"}} for name, data in zips.items()]}
        server.record = lambda: old  # the legacy API: filename, filesize, a bare md5, links.download
        files = {f.name: f for f in download.list_files(server.url)}
        assert files["Video_Speech_Actor_02.zip"].size == len(zips["Video_Speech_Actor_02.zip"])
        assert files["Video_Speech_Actor_02.zip"].md5 == hashlib.md5(zips["Video_Speech_Actor_02.zip"]).hexdigest()
        with pytest.raises(download.DownloadError, match="Video_Speech_Actor_04.zip"):
            download.speech_zips(list(files.values()), [3, 4])

        layout = DriveLayout.at(tmp_path / "root")
        need = cache.estimated_bytes(download.CLIPS_PER_ACTOR, download.PreprocessConfig())
        with pytest.raises(cache.DiskSpaceError, match="needs about") as err:
            download._check_budget(layout, download.PreprocessConfig(),
                                   [download.RemoteFile("big.zip", 1 << 60, "0", "")])
        assert "\n" not in str(err.value)
        assert f"about {cache.gigabytes(need)} to write to {layout.preprocessed}" in capsys.readouterr().out
    finally:
        server.close()


def test_actors_as_notebook_01_and_papermill_give_them():
    assert download.actor_list("1-4") == [1, 2, 3, 4] and download.actor_list("1,3,5") == [1, 3, 5]
    assert download.actor_list(3) == [3] and download.actor_list("all") == list(range(1, 25))  # -p ACTORS 3: an int
    assert download.actor_list(" 1-2, 24 ") == [1, 2, 24]
    for wrong in ("1-25", "one", "", 0):
        with pytest.raises(download.ActorsError) as err:
            download.actor_list(wrong)
        assert "\n" not in str(err.value) and repr(wrong) in str(err.value)
    assert download.main(["--root", "x", "--actors", "1-30"]) == 2  # argparse shows the same line


def test_notebook_data_step_downloads_only_what_is_missing(server, tmp_path):
    """01_data_check's data step: an empty ravdess/ and an incomplete cache -> download; then nothing to do."""
    layout = DriveLayout.at(tmp_path / "root").create()
    with pytest.raises(cache.DataError, match="set DOWNLOAD = True") as err:
        download.ensure_dataset(layout, download_missing=False, actors=[1], source=server.url)
    assert "\n" not in str(err.value)

    assert download.ensure_dataset(layout, actors=[1], source=server.url, workers=1, progress=False)["new"] == 1
    before = len(server.log)
    assert download.ensure_dataset(layout, actors=[1], source=server.url, progress=False) is None
    assert len(server.log) == before  # a complete cache: not even the file list is asked for

    index = cache.as_index(layout.preprocessed)
    assert [c.stem for c in index.clips] == cached(layout.root) and index.counts()[1][0] == 1
    sample = download.inspect_example(layout)  # the raw clip is gone: the cached one is shown
    assert sample.crops.shape == (16, 3, 224, 224) and sample.detected.all() and sample.sample_rate == 16000
