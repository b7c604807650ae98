"""The synthetic RAVDESS-format generator: real mp4 files, both streams, real names, a real face."""

import numpy as np
import pytest
from facenet_pytorch import MTCNN
from moviepy import VideoFileClip
from moviepy.video.io.ffmpeg_reader import ffmpeg_parse_infos

from fer_lib import EMOTIONS
from fer_lib.data import synthetic
from fer_lib.data.ravdess import parse_name


@pytest.fixture(scope="module")
def one_actor(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    paths = synthetic.generate_dataset(out, actors=1, signal="av", seed=3, first_actor=7)
    return out, paths


def test_layout_and_names(one_actor):
    out, paths = one_actor
    assert sorted(p.parent.name for p in paths) == ["Actor_07"] * len(EMOTIONS)
    names = [parse_name(p) for p in paths]
    assert sorted(n.label for n in names) == list(range(len(EMOTIONS)))
    assert all(n.actor == 7 and n.media_type == 1 and n.vocal_channel == 1 for n in names)


def test_each_clip_opens_with_moviepy_with_both_streams(one_actor):
    for path in one_actor[1]:
        with VideoFileClip(str(path)) as clip:
            assert clip.size == [1280, 720]
            assert clip.fps == pytest.approx(30)
            assert 3.1 <= clip.duration <= 4.1
            assert clip.audio is not None
            assert clip.audio.nchannels == 2
            assert clip.audio.to_soundarray().std() > 0.01  # moviepy resamples to 44.1 kHz on read
            frame = clip.get_frame(1.0)
            assert frame.shape == (720, 1280, 3) and frame.std() > 10
        infos = ffmpeg_parse_infos(str(path))
        assert infos["video_codec_name"] == "h264" and infos["audio_fps"] == 48000


def test_mtcnn_finds_the_face(one_actor):
    with VideoFileClip(str(one_actor[1][0])) as clip:
        frame = clip.get_frame(1.5)
    boxes, probs = MTCNN(keep_all=True, device="cpu").detect(frame)
    assert boxes is not None and len(boxes) == 1 and probs[0] > 0.9
    x0, y0, x1, y1 = boxes[0]
    assert 120 < x1 - x0 < 400 and 150 < y1 - y0 < 450  # a RAVDESS-sized face


def test_deterministic_for_a_seed(tmp_path):
    spec = synthetic.draw_spec(4, 2, "av", np.random.default_rng(11))
    a = synthetic.write_clip(tmp_path / "a" / "01-01-05-01-01-01-02.mp4", spec)
    b = synthetic.write_clip(tmp_path / "b" / "01-01-05-01-01-01-02.mp4", spec)
    assert a.read_bytes() == b.read_bytes()


def dominant_pitch(spec):
    mono = synthetic.render_audio(spec)[:, 0].astype(np.float64)
    inside = slice(int(spec.speech_start * 48000), int(spec.speech_end * 48000))
    spectrum = np.abs(np.fft.rfft(mono[inside]))
    freqs = np.fft.rfftfreq(mono[inside].size, 1 / 48000)
    return freqs[np.argmax(spectrum)]


@pytest.mark.parametrize("signal", synthetic.SIGNALS)
def test_signal_decides_which_modality_carries_the_label(signal):
    rng = np.random.default_rng(0)
    specs = [synthetic.draw_spec(label, 1, signal, rng) for label in range(8) for _ in range(4)]
    audio_carries = all(s.audio_class == s.label for s in specs)
    face_carries = all(s.face_class == s.label for s in specs)
    assert audio_carries == ("a" in signal)
    assert face_carries == ("v" in signal)
    for spec in specs[:: 4]:  # the heard pitch is the audio class's pitch
        assert dominant_pitch(spec) == pytest.approx(synthetic.PITCHES_HZ[spec.audio_class], rel=0.03)


def test_face_cues_differ_per_class():
    cues = {synthetic.FaceCue.for_class(label) for label in range(8)}
    assert len(cues) == 8
    renderer = synthetic.FaceRenderer()
    closed = renderer.face(synthetic.FaceCue.for_class(0), opening=0.0)
    faces = [renderer.face(synthetic.FaceCue.for_class(label), opening=1.0) for label in range(8)]
    diffs = [np.abs(f.astype(int) - closed).sum() for f in faces]
    assert len(set(diffs)) == 8 and min(diffs) > 0


def test_cli_writes_clips_and_rejects_bad_arguments(tmp_path, capsys):
    assert synthetic.main(["--out", str(tmp_path), "--actors", "30"]) == 2
    assert "actors must lie in 1..24" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
