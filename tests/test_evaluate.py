"""Evaluation, cross-validation, the confusion explorer and prediction: real mp4 clips, the real
preprocessing cache, the `tiny` preset trained for one epoch by the real trainer."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support,
)

from fer_lib import EMOTIONS, cv, evaluate, explorer, predict, predictions, reports
from fer_lib.config import TrainConfig
from fer_lib.data import synthetic
from fer_lib.data.cache import list_clips
from fer_lib.data.ravdess import parse_name

LABELS = list(range(len(EMOTIONS)))
ONE_EPOCH = dict(max_epochs=1, batch_size=4, num_workers=0)
# scikit-learn's own note when a small test set lacks a predicted class; handled as fer_lib.metrics documents
pytestmark = pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")


@pytest.fixture(scope="module")
def drive(tmp_path_factory):
    """A Drive-layout root: runs/ and predictions/ live under it."""
    return tmp_path_factory.mktemp("drive")


@pytest.fixture(scope="module")
def trained(synthetic_cache, drive):
    """`tiny`, one epoch, fixed split of the 3 synthetic actors (test actor 3), via the real trainer."""
    from fer_lib.train import train

    return train(synthetic_cache.root, drive / "runs", "tiny", TrainConfig(**ONE_EPOCH), run_name="tiny_1ep",
                 show_progress=False)


@pytest.fixture(scope="module")
def ablation(trained, synthetic_cache):
    return evaluate.evaluate(trained.run_dir, synthetic_cache.root, ablation=True, progress=False, verbose=False)


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def probs_of(rows):
    return np.array([[float(r[f"p_{e}"]) for e in EMOTIONS] for r in rows])


# --------------------------------------------------------------------------------------------
# evaluate
# --------------------------------------------------------------------------------------------


def test_metrics_agree_with_sklearn_recomputed_from_predictions_csv(ablation, trained, synthetic_cache, tmp_path):
    split = json.loads((trained.run_dir / "split.json").read_text())
    out = Path(ablation["out_dir"])
    assert out == trained.run_dir / "eval" / "best-test-ablation"  # default: runs/<name>/eval/
    expected = sorted(c.stem for c in list_clips(synthetic_cache.root) if c.actor in split["test"])
    probs = {}
    for flag in ("a", "v", "av"):
        rows = read_rows(out / flag / "predictions.csv")
        assert sorted(Path(r["path"]).stem for r in rows) == expected
        assert {int(r["actor"]) for r in rows} == set(split["test"])
        p = probs_of(rows)
        y_true = np.array([int(r["true"]) for r in rows])
        y_pred = np.array([int(r["pred"]) for r in rows])
        assert np.allclose(p.sum(axis=1), 1.0, atol=1e-4)
        assert (y_pred == p.argmax(axis=1)).all()
        assert (y_true == [parse_name(r["path"]).label for r in rows]).all()
        assert [r["true_name"] for r in rows] == [EMOTIONS[y] for y in y_true]
        assert [r["pred_name"] for r in rows] == [EMOTIONS[y] for y in y_pred]

        saved = json.loads((out / flag / "metrics.json").read_text())
        assert saved["war"] == pytest.approx(accuracy_score(y_true, y_pred))
        assert saved["uar"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))
        assert saved["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro", zero_division=0))
        precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=LABELS, zero_division=0)
        for k, name in enumerate(EMOTIONS):
            assert saved["per_class"][name] == pytest.approx(
                {"precision": precision[k], "recall": recall[k], "f1": f1[k], "support": support[k]})
        assert saved["confusion"] == confusion_matrix(y_true, y_pred, labels=LABELS).tolist()
        assert saved["actors"] == split["test"] and saved["modalities"] == flag
        assert "test actor" in saved["subtitle"]  # every figure names its actors
        assert (out / flag / "confusion.png").stat().st_size > 1000

        # every number and figure again, from the CSV alone
        again = reports.report_from_predictions(out / flag / "predictions.csv", tmp_path / flag)
        for key in ("war", "uar", "macro_f1", "per_class", "confusion"):
            assert again[key] == saved[key]
        assert (tmp_path / flag / "confusion.png").is_file()
        probs[flag] = p

    table = {r["modalities"]: r for r in read_rows(out / "ablation.csv")}
    assert list(table) == ["a", "v", "av"]
    for flag, row in table.items():
        saved = json.loads((out / flag / "metrics.json").read_text())
        for key in ("war", "uar", "macro_f1"):
            assert float(row[key]) == pytest.approx(saved[key], abs=1e-6)
    assert "audio only" in (out / "ablation.md").read_text() and (out / "ablation.png").is_file()
    # the three modes really feed the model different inputs
    assert not np.allclose(probs["a"], probs["v"]) and not np.allclose(probs["a"], probs["av"])


def test_metrics_on_known_predictions_and_csv_round_trip(tmp_path):
    # 3 classes present: recalls 1/2, 1, 1/2 -> UAR 2/3, WAR 4/6
    labels, preds = [0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0]
    probs = np.full((6, 8), 0.01)
    probs[np.arange(6), preds] = 0.93
    pred = predictions.Predictions.from_probs([f"c{i}.npz" for i in range(6)], [1, 1, 2, 2, 3, 3], labels, probs)
    m = predictions.metrics_from_predictions(pred)
    assert m["war"] == pytest.approx(4 / 6) and m["uar"] == pytest.approx(2 / 3)
    assert m["confusion"][0][:3] == [1, 1, 0] and m["confusion"][2][:3] == [1, 0, 1]
    assert m["per_class"]["calm"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})

    rng = np.random.default_rng(0)  # a bigger, imbalanced set against scikit-learn
    y = rng.choice(8, size=120, p=[0.05, 0.15, 0.15, 0.15, 0.15, 0.15, 0.1, 0.1])
    p = rng.dirichlet(np.ones(8), size=120)
    p[np.arange(120), y] += rng.uniform(0, 0.5, size=120)
    p /= p.sum(axis=1, keepdims=True)
    big = predictions.Predictions.from_probs([f"c{i}.npz" for i in range(120)], rng.integers(1, 25, 120), y, p)
    big.write_csv(tmp_path / "predictions.csv")
    back = predictions.load_predictions(tmp_path)
    assert (back.labels == y).all() and (back.preds == p.argmax(1)).all() and np.allclose(back.probs, p, atol=1e-6)
    m = predictions.metrics_from_predictions(tmp_path / "predictions.csv")
    assert m["uar"] == pytest.approx(balanced_accuracy_score(y, p.argmax(1)))
    assert m["macro_f1"] == pytest.approx(f1_score(y, p.argmax(1), average="macro"))
    assert m["uar"] != pytest.approx(m["war"])


def test_earlier_results_are_never_overwritten(trained, synthetic_cache, tmp_path):
    first = evaluate.evaluate(trained.best_checkpoint, synthetic_cache.root, out=tmp_path, modalities="v",
                              progress=False, verbose=False)
    before = (Path(first["out_dir"]) / "metrics.json").read_bytes()
    second = evaluate.evaluate(trained.best_checkpoint, synthetic_cache.root, out=tmp_path, modalities="v",
                               progress=False, verbose=False)
    assert Path(first["out_dir"]).name == "best-test-v"
    assert Path(second["out_dir"]).name == "best-test-v-2"
    assert (Path(first["out_dir"]) / "metrics.json").read_bytes() == before


# --------------------------------------------------------------------------------------------
# the confusion explorer
# --------------------------------------------------------------------------------------------


def known_predictions():
    #            0 angry ok, 1-2 angry->disgust, 3 angry->sad, 4 disgust->angry, 5 sad ok, 6 neutral->calm
    truth = ["angry", "angry", "angry", "angry", "disgust", "sad", "neutral"]
    guess = ["angry", "disgust", "disgust", "sad", "angry", "sad", "calm"]
    conf = [0.9, 0.6, 0.8, 0.7, 0.5, 0.9, 0.4]
    probs = np.zeros((7, 8))
    for i, (g, c) in enumerate(zip(guess, conf)):
        probs[i] = (1 - c) / 7
        probs[i, EMOTIONS.index(g)] = c
    return predictions.Predictions.from_probs([f"/x/clip{i}.npz" for i in range(7)], [1] * 7,
                                           [EMOTIONS.index(t) for t in truth], probs)


def test_confusion_shows_clips_and_row_percentages_and_curves_whole_epochs():
    from fer_lib import plots

    cm = known_predictions().confusion()
    texts = [t.get_text() for t in plots.confusion_figure(cm).axes[0].texts]
    angry, disgust = EMOTIONS.index("angry"), EMOTIONS.index("disgust")
    assert texts[angry * 8 + disgust] == "2\n50%" and texts[angry * 8 + angry] == "1\n25%"  # 4 angry clips

    rows = [{"epoch": e, "train_loss": 1.0, "val_loss": 1.0, "train_acc": 0.5, "val_acc": 0.5, "val_uar": 0.5,
             "val_macro_f1": 0.5} for e in (1, 2, 3)]
    figure = plots.curves_figure(rows)
    figure.canvas.draw()  # places the ticks
    for ax in figure.axes:
        assert all(float(tick).is_integer() for tick in ax.get_xticks())


def test_explorer_data_functions():
    pred = known_predictions()
    assert explorer.misclassified(pred, "angry").tolist() == [2, 3, 1]  # most confident mistake first
    assert sorted(explorer.misclassified(pred).tolist()) == [1, 2, 3, 4, 6]
    assert explorer.misclassified(pred, "sad").tolist() == []
    assert explorer.false_alarms(pred, "angry").tolist() == [4]
    assert explorer.false_alarms(pred, "disgust").tolist() == [2, 1]
    assert explorer.pair_clips(pred, "angry", "disgust").tolist() == [2, 1]
    assert explorer.pair_clips(pred, EMOTIONS.index("angry"), "angry").tolist() == [0]
    assert explorer.pair_clips(pred, "sad", "angry").tolist() == []
    top = explorer.top_confusions(pred, k=2)
    assert (top[0]["true"], top[0]["pred"], top[0]["count"]) == ("angry", "disgust", 2)
    assert top[0]["share"] == pytest.approx(0.5)
    assert {(c["true"], c["pred"]) for c in explorer.top_confusions(pred, "angry")} == {
        ("angry", "disgust"), ("angry", "sad"), ("disgust", "angry")}

    view = explorer.class_view(pred, "angry")
    assert view.row == {**dict.fromkeys(EMOTIONS, 0), "angry": 1, "disgust": 2, "sad": 1}
    assert view.column == {**dict.fromkeys(EMOTIONS, 0), "angry": 1, "disgust": 1}
    assert (view.clips, view.correct) == (4, 1)
    assert view.recall == pytest.approx(0.25) and view.precision == pytest.approx(0.5)
    with pytest.raises(ValueError, match="unknown emotion"):
        explorer.misclassified(pred, "bored")

    ui = explorer.ConfusionExplorer(pred)  # the widget, built and driven without a browser
    ui.widget()
    ui.emotion.value = "angry"
    labels = [label for label, _ in ui.pair.options]
    assert labels[0] == "all misclassified angry (3)" and "angry → disgust (2)" in labels
    assert len(ui.clips.children) == 3
    ui.pair.value = labels.index("angry → disgust (2)")
    assert len(ui.clips.children) == 2 and "2 clips" in ui.status.value
    ui.pair.value = labels.index("disgust → angry (1)")
    assert len(ui.clips.children) == 1 and "clip4" in ui.clips.children[0].children[0].value


def test_static_fallback_and_widget_from_the_cache(ablation, synthetic_cache, tmp_path, capsys):
    folder = Path(ablation["out_dir"]) / "av"
    pred = predictions.load_predictions(folder)
    wrong = explorer.misclassified(pred)
    assert len(wrong) > 0  # one epoch on 4 clips: there are mistakes to explore
    md = explorer.show_static(folder, synthetic_cache.root, max_clips=4, display=False, out_dir=tmp_path,
                              subtitle=ablation["subtitle"])
    for name in EMOTIONS:
        assert f"### {name}" in md
        view = explorer.class_view(pred, name)
        assert f"{view.clips} clip{'s' if view.clips != 1 else ''}, {view.correct} correct" in md
        for row in pred.rows(view.missed[:4]):
            assert Path(row["path"]).stem in md
        if len(view.missed):  # face strips come from the cache
            assert (tmp_path / f"misclassified_{name}.png").stat().st_size > 1000
    assert "test actor 3" in md and (tmp_path / "explorer.md").read_text() == md

    explorer.show_static(folder, emotions=["neutral"])  # outside a notebook: printed
    printed = capsys.readouterr().out
    assert "### neutral" in printed and "### calm" not in printed
    explorer.explore(folder, synthetic_cache.root, static=False)  # no video folder: it says so
    assert "The original videos are not available" in capsys.readouterr().out

    ui = explorer.ConfusionExplorer(folder, synthetic_cache.root, video_dir=synthetic_cache.clips.root)
    ui.widget()
    first = pred.rows(wrong[:1])[0]
    ui.emotion.value = first["true_name"]
    ui.pair.value = [p for p in range(len(ui._pairs)) if ui._pairs[p] == (first["true_name"], first["pred_name"])][0]
    box = ui.clips.children[0]
    kinds = [type(w).__name__ for w in box.children]
    assert kinds[:4] == ["HTML", "Image", "Audio", "Button"]
    assert box.children[2].value[:4] == b"RIFF" and box.children[1].value[:4] == b"\x89PNG"
    box.children[3].click()  # "show video": the original mp4 is embedded on request
    video = box.children[4].children[0]
    assert type(video).__name__ == "Video" and len(video.value) > 10_000


# --------------------------------------------------------------------------------------------
# predict
# --------------------------------------------------------------------------------------------


def test_clip_windows_average_the_logits_over_the_whole_raw_clip(trained, synthetic_cache, tmp_path):
    """--clip_windows: windows covering each raw test clip, their mean logits, reported beside one window."""
    import torch

    from fer_lib.data.media import VideoWindows, open_media
    from fer_lib.training.checkpoint import load_model

    report = evaluate.evaluate(trained.run_dir, synthetic_cache.root, out=tmp_path, modalities="av", progress=False,
                               verbose=False, data_dir=synthetic_cache.clips.root, clip_windows=True)
    out = Path(report["out_dir"])
    alone = evaluate.evaluate(trained.run_dir, synthetic_cache.root, out=tmp_path, modalities="av", progress=False,
                              verbose=False)
    assert report["results"] == alone["results"]  # the single-window figures are the same with the option
    rows = {Path(r["path"]).stem: r for r in read_rows(out / "windows" / "predictions.csv")}
    assert sorted(rows) == sorted(Path(r["path"]).stem for r in read_rows(out / "predictions.csv"))
    table = (out / "windows.md").read_text()
    assert "one 3 s window (cache)" in table and "windows over the whole clip" in table
    assert report["windows"]["av"]["war"] == json.loads((out / "windows" / "metrics.json").read_text())["war"]

    # The longest test clip, recomputed window by window: the mean of the windows' logits.
    model = load_model(trained.run_dir, "cpu").model
    inp = model.config.input
    stem = max(rows, key=lambda name: synthetic_cache.clips.specs[name].seconds)
    video = next(synthetic_cache.clips.root.rglob(f"{stem}.mp4"))
    windows = list(VideoWindows(video, open_media(video, inp.sample_rate), inp, 1.5, True, True))
    assert len(windows) >= 2  # longer than one window: the option sees more than the cache holds
    with torch.no_grad():
        logits = torch.stack([model({k: torch.as_tensor(v)[None] for k, v in w.inputs.items()}).logits[0]
                              for w in windows]).mean(dim=0)
    np.testing.assert_allclose(probs_of([rows[stem]])[0], logits.softmax(dim=-1).numpy(), atol=1e-5)


def test_predict_clip_without_audio_is_visual_only(trained, tmp_path):
    spec = synthetic.draw_spec(3, 9, "av", np.random.default_rng(1), seconds=3.5)
    clip = synthetic.write_clip(tmp_path / "silent.mp4", spec, with_audio=False)
    with pytest.warns(UserWarning, match="no audio track"):
        result = predict.predict_video(clip, trained.best_checkpoint, out=tmp_path / "out", progress=False, verbose=False)
    out = Path(result["out_dir"])
    rows = read_rows(out / "windows.csv")
    assert result["mode"] == "visual only" and result["windows"] == len(rows) == 2  # starts 0.0 and 0.5
    assert [float(r["start"]) for r in rows] == [0.0, 0.5]
    assert {r["modalities"] for r in rows} == {"visual"} and all(int(r["face_frames"]) > 0 for r in rows)
    saved = json.loads((out / "prediction.json").read_text())
    mean = probs_of(rows).mean(axis=0)
    assert saved["label"] == EMOTIONS[int(mean.argmax())]
    assert [saved["probabilities"][e] for e in EMOTIONS] == pytest.approx(mean.tolist(), abs=1e-5)
    assert saved["video_info"]["has_audio"] is False
    assert (out / "timeline.png").stat().st_size > 1000 and (out / "faces.png").is_file()


def test_predict_long_clip_slides_windows(trained, drive):
    spec = synthetic.draw_spec(4, 10, "av", np.random.default_rng(2), seconds=9.0)
    clip = synthetic.write_clip(drive / "uploads" / "long_take.mp4", spec)
    result = predict.predict_video(clip, trained.best_checkpoint, progress=False, verbose=False)
    out = Path(result["out_dir"])
    assert out == drive / "predictions" / "long_take"  # the Drive layout's predictions/<video name>/
    rows = read_rows(out / "windows.csv")
    assert [float(r["start"]) for r in rows] == [0.0, 1.5, 3.0, 4.5, 6.0]  # 3 s windows, hop 1.5 s
    assert result["windows"] == len(rows) == 5 and float(rows[-1]["end"]) == pytest.approx(9.0)
    assert {r["modalities"] for r in rows} == {"audio+visual"} and result["mode"] == "audio+visual"
    assert [r["emotion"] for r in rows] == [EMOTIONS[k] for k in probs_of(rows).argmax(axis=1)]
    saved = json.loads((out / "prediction.json").read_text())
    assert saved["label"] == EMOTIONS[int(probs_of(rows).mean(axis=0).argmax())] and saved["hop_seconds"] == 1.5
    again = predict.predict_video(clip, trained.best_checkpoint, hop=3.0, progress=False, verbose=False)
    assert again["windows"] == 3 and Path(again["out_dir"]).name == "long_take-2"  # nothing overwritten


def test_predict_turns_a_phone_video_upright(trained, tmp_path):
    spec = synthetic.draw_spec(2, 11, "av", np.random.default_rng(3), seconds=3.5)
    upright = synthetic.write_clip(tmp_path / "upright.mp4", spec)
    # What a phone writes for portrait video: the pixels stored a quarter turn clockwise, plus a display
    # matrix that tells players to turn them back (90 degrees counter-clockwise).
    ffmpeg = [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y"]
    sideways, phone = tmp_path / "sideways.mp4", tmp_path / "phone.mp4"
    subprocess.run(ffmpeg + ["-i", str(upright), "-vf", "transpose=clock", "-c:v", "libx264", "-crf", "12",
                             "-c:a", "copy", str(sideways)], check=True)
    subprocess.run(ffmpeg + ["-display_rotation:v:0", "90", "-i", str(sideways), "-c", "copy", str(phone)], check=True)
    results = {clip.stem: predict.predict_video(clip, trained.best_checkpoint, out=tmp_path / "out", progress=False,
                                                verbose=False) for clip in (upright, phone)}
    assert results["phone"]["mode"] == "audio+visual" and not results["phone"]["warnings"]
    rows = {name: read_rows(Path(result["out_dir"]) / "windows.csv") for name, result in results.items()}
    assert all(int(r["face_frames"]) == 16 for r in rows["phone"])
    # the same face crops as the upright file, up to the re-encoding
    assert np.abs(probs_of(rows["phone"]) - probs_of(rows["upright"])).max() < 0.05


def lavfi_clip(path, seconds, audio: bool):
    """A grey picture (no face), with a tone when `audio`."""
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-f", "lavfi",
           "-i", f"color=c=gray:s=320x240:d={seconds}:r=25"]
    if audio:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency=220:duration={seconds}", "-c:a", "aac", "-shortest"]
    subprocess.run(cmd + ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


def test_predict_without_a_face_or_picture_is_audio_only(trained, tmp_path):
    clip = lavfi_clip(tmp_path / "no_face.mov", 3.0, audio=True)
    with pytest.warns(UserWarning, match="no face found"):
        result = predict.predict_video(clip, trained.best_checkpoint, out=tmp_path, progress=False, verbose=False)
    assert result["mode"] == "audio only" and result["windows"] == 1
    assert "no face found in any window: audio-only mode" in result["warnings"]

    sound = tmp_path / "voice.m4a"  # no video stream at all
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-f", "lavfi",
                    "-i", "sine=frequency=180:duration=4", "-c:a", "aac", str(sound)], check=True)
    with pytest.warns(UserWarning, match="no video stream"):
        result = predict.predict_video(sound, trained.best_checkpoint, out=tmp_path, progress=False, verbose=False)
    assert result["mode"] == "audio only" and result["windows"] == 2


# --------------------------------------------------------------------------------------------
# one-line errors
# --------------------------------------------------------------------------------------------


def error_lines(capsys):
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_one_line_errors(trained, synthetic_cache, tmp_path, capsys):
    ckpt, cache = str(trained.best_checkpoint), str(synthetic_cache.root)
    (tmp_path / "empty").mkdir()
    cases = [
        (["--checkpoint", str(tmp_path / "nope"), "--cache_dir", cache], "checkpoint not found"),
        (["--checkpoint", str(tmp_path / "empty"), "--cache_dir", cache], "not a checkpoint"),
        (["--checkpoint", ckpt, "--cache_dir", str(tmp_path / "no_cache")], "cache folder not found"),
        (["--checkpoint", ckpt, "--cache_dir", str(tmp_path / "empty")], "not a preprocessing cache"),
        (["--checkpoint", ckpt, "--cache_dir", cache, "--modalities", "x"], "unknown modalities"),
        (["--checkpoint", ckpt, "--cache_dir", cache, "--split", "train"], "unknown split"),
    ]
    for argv, message in cases:
        assert evaluate.main(argv) == 2
        lines = error_lines(capsys)
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (argv, lines)

    junk = tmp_path / "junk.mp4"
    junk.write_text("not a video")
    for argv, message in [([str(tmp_path / "missing.mp4"), "--checkpoint", ckpt], "video not found"),
                          ([str(junk), "--checkpoint", ckpt], "not a readable video file"),
                          ([str(junk), "--checkpoint", str(tmp_path / "nope")], "checkpoint not found"),
                          ([str(junk), "--checkpoint", ckpt, "--modalities", "y"], "unknown modalities")]:
        assert predict.main(argv) == 2
        lines = error_lines(capsys)
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (argv, lines)

    # no audio and no face: nothing to predict from (found after the model is loaded: last line, only error)
    silent = lavfi_clip(tmp_path / "grey.mp4", 2.0, audio=False)
    assert predict.main([str(silent), "--checkpoint", ckpt, "--out", str(tmp_path), "--no_progress"]) == 2
    lines = error_lines(capsys)
    assert [line for line in lines if line.startswith("error:")] == [lines[-1]]
    assert "no face found and no audio track" in lines[-1]

    for argv, message in [(["--cache_dir", cache, "--cv_dir", str(tmp_path), "--fold", "1"], "--fold is set per fold"),
                          (["--cache_dir", cache], "give --name")]:
        assert cv.main(argv) == 2
        lines = error_lines(capsys)
        assert len(lines) == 1 and message in lines[0], lines


# --------------------------------------------------------------------------------------------
# cross-validation
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def six_actor_cache(synthetic_cache, tmp_path_factory):
    """The session cache (actors 1-3) plus one clip each of actors 4-6: enough for the 6-fold split."""
    from fer_lib.preprocess import preprocess

    cache = tmp_path_factory.mktemp("cache6")
    for path in synthetic_cache.root.iterdir():
        if path.is_file():
            shutil.copy2(path, cache / path.name)
    raw = tmp_path_factory.mktemp("raw6")
    rng = np.random.default_rng(6)
    for actor, label in ((4, 2), (5, 4), (6, 6)):
        spec = synthetic.draw_spec(label, actor, "av", rng)
        synthetic.write_clip(raw / f"Actor_{actor:02d}" / synthetic.clip_name(label, actor, 0), spec)
    preprocess(raw, cache, progress=False, verbose=False)
    return cache


def test_cross_validation_two_folds_resumable(six_actor_cache, tmp_path):
    from fer_lib.data.splits import kfold_splits

    cv_dir = tmp_path / "cv" / "tiny_cv"
    cfg = TrainConfig(**ONE_EPOCH)
    summary = cv.cross_validate(six_actor_cache, cv_dir, "tiny", cfg, folds=[0, 1], ablation=True,
                                show_progress=False, verbose=False)
    assert summary["status"] == {0: "done", 1: "done"} and summary["folds"] == [0, 1]
    splits = kfold_splits(range(1, 7))
    fold_metrics = []
    for k in (0, 1):
        result = json.loads((cv_dir / f"fold_{k}" / "fold_result.json").read_text())
        assert result["test_actors"] == list(splits[k].test) and result["split_name"] == f"fold {k}/6"
        assert (cv_dir / f"fold_{k}" / "checkpoints" / "best" / "model.safetensors").is_file()
        metrics = json.loads((cv_dir / f"fold_{k}" / result["eval_dir"] / "metrics.json").read_text())
        assert metrics["actors"] == list(splits[k].test)
        fold_metrics.append(metrics)
    for key in ("war", "uar", "macro_f1"):
        values = [m[key] for m in fold_metrics]
        assert summary["metrics"][key]["mean"] == pytest.approx(np.mean(values))
        assert summary["metrics"][key]["std"] == pytest.approx(np.std(values, ddof=1))
    summed = np.array(fold_metrics[0]["confusion"]) + np.array(fold_metrics[1]["confusion"])
    saved = json.loads((cv_dir / "summary.json").read_text())
    assert saved["confusion_summed"] == summed.tolist() and saved["clips"] == summed.sum()
    assert len(read_rows(cv_dir / "predictions_all.csv")) == summed.sum()
    md = (cv_dir / "summary.md").read_text()
    assert "fold 0: 1; fold 1: 2" in md and "| WAR |" in md  # the folds are named with the figures
    # The results table: WAR, UAR, macro-F1 per fold and modality, then mean and std per modality.
    table = cv.modality_table(saved)
    for flag, name in (("a", "audio only"), ("v", "visual only"), ("av", "audio+visual")):
        fold0 = json.loads((cv_dir / "fold_0" / "eval" / "best-test-ablation" / flag / "metrics.json").read_text())
        assert f"| {name} | 0 | 1 | {reports.fmt(fold0['war'])} | {reports.fmt(fold0['uar'])} |" in table
        assert f"| {name} | **std** |" in table
    assert table in md

    # README's Results section from this summary, and "not measured yet" without one.
    from fer_lib import results

    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- results:start -->\nSTALE\n<!-- results:end -->\ntail\n")
    assert results.main(["--readme", str(readme)]) == 0
    assert "Not measured yet" in readme.read_text() and "STALE" not in readme.read_text()
    assert results.main(["--cv_dir", str(cv_dir), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert table in text and "6 folds of 4 consecutive actors" in text and text.endswith("<!-- results:end -->\ntail\n")
    for name in ("confusion_summed.png", "folds.csv", "folds.png"):
        assert (cv_dir / name).stat().st_size > 0

    # finished folds are skipped; an interrupted fold resumes through the trainer (no epoch redone)
    stamp = (cv_dir / "fold_0" / "fold_result.json").stat().st_mtime_ns
    assert cv.main(["--cache_dir", str(six_actor_cache), "--cv_dir", str(cv_dir), "--folds", "0,1",
                    "--config_type", "tiny", "--max_epochs", "1", "--batch_size", "4", "--num_workers", "0"]) == 0
    assert (cv_dir / "fold_0" / "fold_result.json").stat().st_mtime_ns == stamp
    (cv_dir / "fold_1" / "fold_result.json").unlink()
    again = cv.cross_validate(six_actor_cache, cv_dir, "tiny", cfg, folds=[1], show_progress=False, verbose=False)
    assert again["status"] == {1: "resumed"} and again["folds"] == [0, 1]
    assert len(read_rows(cv_dir / "fold_1" / "metrics.csv")) == 1

    # issue 22.7: the std of one fold is undefined: "n/a", never "± 0.00", and README copies that
    one = cv.aggregate(cv_dir, folds=[0])
    assert all(one["metrics"][k]["std"] is None for k in ("war", "uar", "macro_f1"))
    md = (cv_dir / "summary.md").read_text()
    assert "± n/a" in md and "± 0.00" not in md and "over 1 fold)" in md
    assert results.main(["--cv_dir", str(cv_dir), "--readme", str(readme)]) == 0
    text = readme.read_text()  # the per-modality table: its std rows
    assert "| **std** |  | **n/a** | **n/a** | **n/a** |" in text and "**0.00**" not in text


def test_the_reference_recipe_is_what_the_cv_command_runs(six_actor_cache, tmp_path, monkeypatch):
    from fer_lib.config import get_recipe

    calls = []
    monkeypatch.setattr(cv, "cross_validate", lambda *args, **kwargs: calls.append((args, kwargs)))
    base = ["--cache_dir", str(six_actor_cache), "--cv_dir", str(tmp_path), "--recipe", "reference"]
    assert cv.main(base) == 0 and cv.main(base + ["--max_epochs", "3"]) == 0
    model_cfg, train_cfg = get_recipe("reference")
    (args, kwargs), (args3, _) = calls
    assert args[2:4] == (model_cfg, train_cfg) and kwargs["ablation"]  # every modality mode per fold
    assert args3[3].max_epochs == 3 and args3[3].lr == train_cfg.lr  # an explicit flag still wins
    assert model_cfg.preset == "full" and model_cfg.fusion.lora_rank > 0 and train_cfg.embedding_cache
