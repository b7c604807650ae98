"""The web app in a real browser: Chromium (the Debian package) driven by Playwright against
`python -m fer_lib.app` on 127.0.0.1, serving a `tiny` run trained for one epoch on the shared synthetic cache.

One app server and one browser for the module; each case opens its own page. The webcam is Chromium's
fake capture device playing a synthetic clip (y4m video + wav sound, made with ffmpeg).
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import imageio_ffmpeg
import numpy as np
import pytest

from fer_lib import EMOTIONS, predict
from fer_lib.config import TrainConfig
from fer_lib.predictions import PROB_FIELDS

REPO = Path(__file__).resolve().parents[1]
MAX_SECONDS = 5.5  # the server's --max_seconds: the 8 s clip is over it
RESULT = "t => t.includes(' s, hop ') || t.includes('Cannot predict')"  # a finished job's status line
SCREENSHOT = os.environ.get("FER_APP_SCREENSHOT")  # README's docs/app.png: FER_APP_SCREENSHOT=docs/app.png pytest ...


def ffmpeg(*args: str) -> None:
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def run(synthetic_cache, tmp_path_factory) -> Path:
    """`tiny`, one epoch, on the shared 10-clip cache, by the real trainer."""
    from fer_lib.train import train

    runs = tmp_path_factory.mktemp("app_runs")
    return train(synthetic_cache.root, runs, "tiny", TrainConfig(max_epochs=1, batch_size=4, num_workers=0),
                 run_name="tiny_app", show_progress=False).run_dir


@pytest.fixture(scope="module")
def media(synthetic_clips, tmp_path_factory) -> SimpleNamespace:
    """The files the cases give the page, made from the shared synthetic clips."""
    folder = tmp_path_factory.mktemp("app_media")
    short = synthetic_clips.paths[8]  # 2.0 s: one window
    four = synthetic_clips.paths[2]  # 4.0 s: windows 0-3 s and 1-4 s
    m = SimpleNamespace(clip=short, broken=folder / "broken.mp4", half_face=folder / "half_face.mp4",
                        silent=folder / "silent.mp4", sound=folder / "voice.m4a", long=folder / "long.mp4",
                        camera=folder / "camera.y4m", microphone=folder / "camera.wav")
    m.broken.write_text("not a video")
    # a grey screen over the face from 1.0 s on: window 1 (1-4 s) has no face, window 0 has some
    ffmpeg("-i", str(four), "-vf", "drawbox=x=0:y=0:w=iw:h=ih:color=gray:t=fill:enable='gte(t,1.0)'",
           "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "copy", str(m.half_face))
    ffmpeg("-i", str(short), "-an", "-c:v", "copy", str(m.silent))
    ffmpeg("-i", str(short), "-vn", "-c:a", "copy", str(m.sound))
    ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=320x240:d=8:r=25", "-c:v", "libx264", "-preset", "ultrafast",
           "-pix_fmt", "yuv420p", str(m.long))
    ffmpeg("-i", str(short), "-vf", "scale=640:360,fps=15", "-pix_fmt", "yuv420p", str(m.camera))
    ffmpeg("-i", str(short), "-vn", "-ac", "1", "-ar", "48000", str(m.microphone))
    return m


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(run, tmp_path_factory):
    """`python -m fer_lib.app` serving `run`: its URL, once the page answers (at most 180 s)."""
    port, examples = free_port(), tmp_path_factory.mktemp("app_examples")
    log = tmp_path_factory.mktemp("app_log") / "server.log"
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "fer_lib.app", "--checkpoint", str(run), "--port", str(port),
                                 "--examples", str(examples), "--max_seconds", str(MAX_SECONDS)],
                                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path_factory.mktemp("app_cwd"))
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    while True:
        assert proc.poll() is None, f"the app stopped: {log.read_text()[-3000:]}"
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            assert time.monotonic() < deadline, f"no page after 180 s: {log.read_text()[-3000:]}"
            time.sleep(0.5)
    yield SimpleNamespace(url=url, log=log, examples=examples)
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def browser(media):
    """Chromium from the machine (never a downloaded one), its webcam and microphone faked from a synthetic clip."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    assert chromium, "Chromium is missing: apt-get install -y chromium (scripts/test.sh installs it)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={media.camera}", f"--use-file-for-fake-audio-capture={media.microphone}"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 1400})
    context.grant_permissions(["camera", "microphone"])
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(server.url)
    page.wait_for_selector("#video")
    yield page
    context.close()


def predict_on_page(page, path: Path, tab: str = "video") -> str:
    """Give `path` to the video (or sound) input, press Predict, wait for the job: the status text."""
    if tab == "sound":
        page.get_by_role("tab", name="Sound file").click()
        page.locator("#audio input[type=file]").set_input_files(str(path))
        page.wait_for_selector("#audio audio[src]", state="attached")
    else:
        page.locator("#video input[type=file]").set_input_files(str(path))
        page.wait_for_selector("#video video")
    page.click(f"#predict_{tab if tab == 'video' else 'audio'}")
    return wait_for_result(page)


def wait_for_result(page) -> str:
    page.wait_for_function(f"({RESULT})(document.querySelector('#status').innerText)", timeout=60_000)
    return page.locator("#status").inner_text()


def shown_table(page) -> list[list[str]]:
    """The cells of the timeline table as the page shows them, one list per window."""
    return page.evaluate("""() => Array.from(document.querySelectorAll('#table [role=row][data-index]'))
        .map(row => Array.from(row.querySelectorAll('[role=gridcell]')).map(cell => cell.innerText.trim()))""")


def test_upload_shows_the_timeline_of_fer_lib_predict(page, server, run, media, tmp_path):
    status = predict_on_page(page, media.clip)
    expected = predict.predict_video(media.clip, run, out=tmp_path, progress=False, verbose=False)
    assert status.startswith(f"{expected['label']} ") and "audio+visual" in status, status
    rows, shown = expected["window_rows"], shown_table(page)
    assert [row[:6] for row in shown] == [[f"{r['window']}", f"{r['start']:g}", f"{r['end']:g}", r["modalities"],
                                           f"{r['face_frames']}", r["emotion"]] for r in rows]
    np.testing.assert_allclose([[float(v) for v in row[6:]] for row in shown],  # shown to 3 decimals
                               [[r[f] for f in PROB_FIELDS] for r in rows], atol=5e-4 + 1e-6)
    href = page.locator("#csv a").first.get_attribute("href")
    downloaded = list(csv.DictReader(io.StringIO(urllib.request.urlopen(href, timeout=10).read().decode())))
    with open(Path(expected["out_dir"]) / "windows.csv", newline="") as handle:
        written = list(csv.DictReader(handle))
    assert [r["emotion"] for r in downloaded] == [r["emotion"] for r in written]
    np.testing.assert_allclose([[float(r[f]) for f in PROB_FIELDS] for r in downloaded],
                               [[float(r[f]) for f in PROB_FIELDS] for r in written], atol=1e-6)
    overall = page.locator("#overall").inner_text()
    assert expected["label"] in overall and all(e in overall for e in EMOTIONS)
    assert page.locator("#compared").is_visible()  # sound and a face: the three modes side by side
    for mode in ("audio+visual", "audio only", "visual only"):
        assert mode in page.locator("#compared").inner_text()
    assert page.locator("#faces img").count() == len(rows) and page.locator("#timeline img").count() == 1
    shot = tmp_path / "app.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 50_000
    if SCREENSHOT:  # README's picture: the same page, 800 px wide, 256 colours
        from PIL import Image

        image = Image.open(shot).convert("RGB")
        image = image.resize((800, round(image.height * 800 / image.width)), Image.LANCZOS)
        image.quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(SCREENSHOT, optimize=True)


def test_webcam_recording_gets_a_prediction(page):
    page.click("#video button[aria-label='Capture from camera']")
    page.click("#video button:has-text('Click to Access Webcam')")
    page.click("#video button[aria-label='start recording']")
    time.sleep(2.5)
    page.click("#video button.capture-button")  # the same button stops the recording
    page.wait_for_selector("#video video:not([data-testid=webcam-video])")
    page.click("#predict_video")
    status = wait_for_result(page)
    assert any(status.startswith(e + " ") for e in EMOTIONS) and "audio+visual" in status, status
    assert shown_table(page) and page.locator("#faces img").count() >= 1


def test_an_example_is_one_click_away(page):
    page.locator("#video_examples").get_by_text("happy_face_and_voice").click()
    page.wait_for_selector("#video video")
    assert page.locator("#video video").get_attribute("src")


@pytest.mark.parametrize("case, tab, message", [
    ("broken", "video", "Cannot predict: broken.mp4: not a readable video file"),
    ("long", "video", f"Cannot predict: long.mp4 is 8 s long, over the limit of {MAX_SECONDS:g} s"),
    ("half_face", "video", "note: no face found in 1 of 2 windows, 1 (1.0-4.0 s): those are audio-only"),
    ("silent", "video", "note: no audio track: visual-only mode"),
    ("sound", "sound", "note: no video stream: audio-only mode"),
])
def test_bad_input_gets_a_message_on_the_page(page, media, server, case, tab, message):
    status = predict_on_page(page, getattr(media, case), tab)
    assert message in status, status
    assert "Traceback" not in page.content()
    if status.startswith("Cannot"):  # nothing of an earlier result is left on the page
        assert not shown_table(page) and page.locator("#faces img").count() == 0
