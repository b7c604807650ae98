"""A web page for a trained model: emotions over time in an uploaded video, a webcam recording or a sound file.

    python -m fer_lib.app --checkpoint RUN_DIR|hf://USER/NAME [--port P] [--share] [--max_seconds 300]

or, in a notebook (05), `launch(checkpoint)`: the page shows inline in the notebook (Colab too).

The page runs `fer_lib.predict` on what it is given, with the same windows, the same checkpoint loader and
the same figure as `python -m fer_lib.predict`, and shows:
- the overall emotion and its probabilities (the mean of the window probabilities);
- the emotions over time (timeline.png: probability per emotion per window) and the table of windows,
  with windows.csv to download;
- the face crop of each window (its middle frame, what the visual branch saw) with the tracked face box;
- where the video has sound and a face, the three modality modes side by side (audio+visual, audio
  only, visual only: the same windows, one branch left out).
A sound file (or a video without sound) runs the model audio-only (visual-only); the page says so.
A file it cannot use gets one line on the page saying why (no stream, no face, too long, unreadable).

One model lives in memory; a queue runs one job at a time. Example clips (synthetic RAVDESS-format
clips, `fer_lib.data.synthetic`) are made on first start in `--examples` (default: a temp folder).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np

from fer_lib import EMOTIONS, cli, devices
from fer_lib import modalities as modality_names
from fer_lib.errors import FerError, describe_os_error, one_line
from fer_lib.predictions import PROB_FIELDS
from fer_lib.show import in_notebook

DEFAULT_PORT = 7860
DEFAULT_MAX_SECONDS = 300.0  # 5 minutes: 199 windows at the default hop
COMPARED = (("audio", "visual"), ("audio",), ("visual",))  # the modes shown side by side where both streams exist
TABLE_FIELDS = ("window", "start", "end", "modalities", "face_frames", "emotion", *PROB_FIELDS)
# file name -> (class index in EMOTIONS, seconds, what the file holds): one click each on the page
EXAMPLES = {"happy_face_and_voice.mp4": (2, 6.0, "av"), "angry_face_only.mp4": (4, 4.0, "v"),
            "sad_voice_only.wav": (3, 4.0, "a")}


def ensure_examples(folder: str | Path) -> list[Path]:
    """The example clips of EXAMPLES in `folder`, written where missing (a second each)."""
    from fer_lib.data import synthetic

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (name, (label, seconds, holds)) in enumerate(EXAMPLES.items()):
        path = folder / name
        if not path.is_file():
            spec = synthetic.draw_spec(label, 1, "av", np.random.default_rng(i), seconds=seconds)
            if holds == "a":
                synthetic.write_wav(path, spec)
            else:
                synthetic.write_clip(path, spec, with_audio="a" in holds)
        paths.append(path)
    return paths


def face_tiles(timeline) -> list[tuple[np.ndarray, str]]:
    """(the middle face crop with its face box drawn, caption) per window that had visual input."""
    from PIL import Image, ImageDraw

    tiles = []
    frames = timeline.rows[0]["frames"] if timeline.rows else 0
    for w in timeline.windows:
        if w.middle_crop is None:
            continue
        image = Image.fromarray(np.ascontiguousarray(w.middle_crop.transpose(1, 2, 0)))
        if w.middle_box is not None:
            ImageDraw.Draw(image).rectangle([float(v) for v in w.middle_box], outline=(255, 40, 40), width=3)
        if w.face_frames:
            seen = f"face in {w.face_frames}/{frames} frames"
        else:
            seen = "no face: audio only" if "audio" in w.modalities else "no face: centre crop"
        tiles.append((np.asarray(image), f"window {w.index} · {w.start:g}-{w.end:g} s · {seen}"))
    return tiles


def modality_comparison(model, windows, batch_size: int) -> dict[str, dict[str, float]]:
    """{mode: {emotion: mean probability}} over the windows holding both audio and a face, for each mode of
    COMPARED; empty when no window holds both."""
    import torch

    from fer_lib.predict import window_logits

    both = [w for w in windows if set(w.modalities) == {"audio", "visual"}]
    if not both:
        return {}
    compared = {}
    for mode in COMPARED:
        logits = np.concatenate([window_logits(model, both[i : i + batch_size], mode)
                                 for i in range(0, len(both), batch_size)])
        mean = torch.from_numpy(logits).softmax(dim=-1).mean(dim=0).numpy()
        compared[modality_names.display_name(mode)] = {e: float(p) for e, p in zip(EMOTIONS, mean)}
    return compared


def summary(timeline) -> str:
    """The page's status line for a finished prediction, then one line per note."""
    lines = [f"**{timeline.label}** ({100 * timeline.mean.max():.1f}%) · {timeline.mode} · "
             f"{len(timeline.rows)} window{'s' if len(timeline.rows) > 1 else ''} of {timeline.seconds:g} s, "
             f"hop {timeline.hop:g} s · "
             f"{timeline.media.duration:.1f} s of media · {timeline.elapsed:g} s"]
    lines += [f"- note: {note}" for note in timeline.notes]
    return "\n".join(lines)


class EmotionApp:
    """One loaded model and the work behind the page (`analyse`), separate from the page's layout (`build`)."""

    def __init__(self, trained, out_root: Path, max_seconds: float = DEFAULT_MAX_SECONDS, batch_size: int = 4):
        self.trained, self.out_root, self.max_seconds, self.batch_size = trained, Path(out_root), max_seconds, batch_size

    def describe(self) -> str:
        t = self.trained
        inp = t.config.input
        return (f"Checkpoint `{t.path}` · preset `{t.config.preset}` · trained on "
                f"{modality_names.display_name(t.trained_modalities)} · windows of "
                f"{inp.num_samples / inp.sample_rate:g} s · files up to {self.max_seconds:g} s. "
                "A sound file runs the model **audio-only**, a video without sound **visual-only**; "
                "windows without a face are audio-only." + self._sync_warning())

    def _sync_warning(self) -> str:
        """The run's sync state (run_folder.sync_note) when its folder holds it only in part, as notebook 04 shows it."""
        from fer_lib.training import run_folder

        note = run_folder.sync_note(Path(self.trained.path))
        return f"\n\n**Note:** {note.line}" if note is not None else ""

    def analyse(self, path: Optional[str]) -> dict:
        """Everything the page shows for one file: {"status", "overall", "timeline", "compared", "faces", "table",
        "csv"}; for a file it cannot use, only "status" (one line, no traceback)."""
        from fer_lib.predict import predict_windows, write_prediction

        if not path:
            return {"status": "**Nothing to predict:** upload a video or a sound file, or record one, first."}
        try:
            timeline = predict_windows(self.trained, path, batch_size=self.batch_size, max_seconds=self.max_seconds)
            result = write_prediction(timeline, self.trained, self.out_root)
        except FerError as exc:
            return {"status": f"**Cannot predict:** {one_line(exc)}"}
        except OSError as exc:
            if exc.errno is None and exc.filename is None:
                raise
            return {"status": f"**Cannot predict:** {describe_os_error(exc)}"}
        compared = (modality_comparison(self.trained.model, timeline.windows, self.batch_size)
                    if self.trained.trained_modalities == "av" else {})
        folder = Path(result["out_dir"])
        return {"status": summary(timeline), "overall": result["probabilities"],
                "timeline": str(folder / result["files"]["timeline"]), "compared": compared,
                "faces": face_tiles(timeline), "csv": str(folder / result["files"]["windows"]),
                "table": [[round(r[k], 3) if isinstance(r[k], float) else r[k] for k in TABLE_FIELDS]
                          for r in timeline.rows]}

    def build(self, examples: list[Path]):
        """The page (a gradio Blocks), its queue running one job at a time."""
        import gradio as gr

        with gr.Blocks(title="fer_lib: emotions over time") as page:
            gr.Markdown("# Emotions over time\n" + self.describe())
            with gr.Tabs():
                with gr.Tab("Video: upload or webcam", id="video_tab"):
                    video = gr.Video(sources=["upload", "webcam"], include_audio=True, label="video", height=320,
                                     elem_id="video")
                    video_button = gr.Button("Predict from the video", variant="primary", elem_id="predict_video")
                    gr.Examples([[str(p)] for p in examples if p.suffix == ".mp4"], inputs=[video],
                                label="examples (synthetic clips)", elem_id="video_examples",
                                example_labels=[p.stem for p in examples if p.suffix == ".mp4"])
                with gr.Tab("Sound file", id="audio_tab"):
                    audio = gr.Audio(sources=["upload"], type="filepath", label="sound file", elem_id="audio")
                    audio_button = gr.Button("Predict from the sound", variant="primary", elem_id="predict_audio")
                    gr.Examples([[str(p)] for p in examples if p.suffix != ".mp4"], inputs=[audio],
                                label="examples (synthetic sound)", elem_id="audio_examples",
                                example_labels=[p.stem for p in examples if p.suffix != ".mp4"])
            status = gr.Markdown("Give a video or a sound file, then press Predict.", elem_id="status")
            with gr.Row():
                overall = gr.Label(num_top_classes=len(EMOTIONS), label="overall emotion", elem_id="overall", scale=1)
                timeline = gr.Image(label="emotions over time", type="filepath", elem_id="timeline", scale=3)
            with gr.Row(visible=False, elem_id="compared") as compared_row:
                compared = [gr.Label(num_top_classes=3, label=modality_names.display_name(mode),
                                     elem_id="compared_" + "_".join(mode)) for mode in COMPARED]
            faces = gr.Gallery(label="what the model saw: the face crop of each window (red: the face box)",
                               columns=8, height=220, fit_columns=False, object_fit="contain", elem_id="faces")
            table = gr.Dataframe(headers=list(TABLE_FIELDS), label="timeline: one row per window",
                                 interactive=False, elem_id="table")
            csv_file = gr.File(label="timeline as CSV (windows.csv)", elem_id="csv")

            outputs = [status, overall, timeline, compared_row, *compared, faces, table, csv_file]

            def run(path, progress=gr.Progress(track_tqdm=True)):
                progress(0, desc="reading the file")
                shown = self.analyse(path)
                found = shown.get("compared") or {}
                return [shown["status"], shown.get("overall"), shown.get("timeline"), gr.Row(visible=bool(found)),
                        *[found.get(modality_names.display_name(mode)) for mode in COMPARED],
                        shown.get("faces"), shown.get("table"), shown.get("csv")]

            video_button.click(run, inputs=[video], outputs=outputs)
            audio_button.click(run, inputs=[audio], outputs=outputs)
        return page.queue(default_concurrency_limit=1, max_size=16)


def launch(checkpoint: str | Path, port: Optional[int] = None, share: bool = False,
           max_seconds: float = DEFAULT_MAX_SECONDS, examples: Optional[str | Path] = None, host: str = "127.0.0.1",
           device=None, block: Optional[bool] = None):
    """Load the model once and serve the page; returns the gradio Blocks.

    `port`: default the first free one from 7860. `block`: wait until Ctrl-C (default: outside a notebook).
    In a notebook the page shows inline (in Colab through Colab's own proxy; `share=True` also makes a
    public gradio.live link).
    """
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from fer_lib.training import checkpoint as checkpoints

    trained = checkpoints.load_model(checkpoint, devices.resolve(device))
    out_root = Path(tempfile.mkdtemp(prefix="fer_app_"))
    folder = Path(examples) if examples else Path(tempfile.gettempdir()) / "fer_app_examples"
    page = EmotionApp(trained, out_root, max_seconds).build(ensure_examples(folder))
    notebook = in_notebook()
    page.launch(server_name=host, server_port=port, share=share, inline=notebook,
                prevent_thread_lock=not (not notebook if block is None else block),
                allowed_paths=[str(folder), str(out_root)], show_error=False)
    return page


@cli.command(interrupted="the page is closed")
def main(argv: Optional[list[str]] = None) -> int:
    parser = cli.ArgumentParser(prog="python -m fer_lib.app", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True,
                        help="checkpoint folder, run folder, or a Hugging Face Hub id hf://USER/NAME[@REV]")
    parser.add_argument("--port", type=cli.int_range(1, 65535), default=None,
                        help=f"default: the first free port from {DEFAULT_PORT}")
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to serve other machines of the network")
    parser.add_argument("--share", action="store_true", help="also a public gradio.live link (72 h)")
    parser.add_argument("--max_seconds", type=cli.POSITIVE_FLOAT, default=DEFAULT_MAX_SECONDS,
                        help="longest video or sound accepted, in seconds")
    parser.add_argument("--examples", default=None, help="folder of the example clips (made where missing)")
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    args = parser.parse_args(argv)
    if args.examples:
        from fer_lib.fileio import check_writable

        check_writable(Path(args.examples))
    launch(args.checkpoint, args.port, args.share, args.max_seconds, args.examples, args.host, args.device, block=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
