"""Evaluate a checkpoint on the preprocessing cache: metrics, confusion matrices, per-clip predictions.

    python -m fer_lib.evaluate --checkpoint PATH (--cache_dir CACHE | --data_dir RAW [--cache_dir CACHE])
                               [--out DIR] [--modalities av|a|v] [--split test|val|all] [--ablation]
                               [--clip_windows [--hop SECONDS]]

or, in a notebook, `evaluate(checkpoint, cache_dir, ...) -> dict`.

`checkpoint` is a checkpoint folder (`runs/<name>/checkpoints/best`), a run folder (its `best`
checkpoint is used, `last` when there is no `best`) or a model on the Hugging Face Hub
(`hf://USER/NAME[@REVISION]`, `fer_lib.hub`). `--cache_dir` is the preprocessing cache
(`cache/preprocessed/`); `--data_dir` the raw clips, preprocessed first into `--cache_dir` (default:
`cache/preprocessed/` beside the raw folder, as in the Drive layout) when they are not cached yet.
`split` picks the clips by the actors stored with the checkpoint (`split.json`): `test` (default),
`val`, or `all` (every cached clip; only honest for actors the model never saw).

Output (default `runs/<name>/eval/`; for a hub id `hub/USER--NAME/eval/` in the working folder; or `--out`):
one new folder per call, never an earlier one overwritten. Its name says what was measured:
`<checkpoint>-<split>-<modalities>` (e.g. `best-test-av`; `USER--NAME@<commit>-test-av` for a hub id), or
`<checkpoint>-<split>-ablation` with `--ablation`; if that folder exists already,
`-2`, `-3`, ... is appended and the earlier results stay as they are.

    best-test-av/
        predictions.csv          one row per clip (`fer_lib.predictions`)
        metrics.json             war (accuracy), uar, macro_f1, per-class precision/recall/f1/support,
                                 the raw confusion matrix, what was evaluated (checkpoint, split, actors)
        per_class.csv            the per-class table
        confusion.png            the confusion matrix: clips and % of the row (recall on the diagonal)
        report.md                the same numbers as a markdown table
    best-test-ablation/
        av/ a/ v/                each as above, all three from the same weights
        ablation.csv, ablation.md, ablation.json, ablation.png   one row per modality mode

Everything in metrics.json and every figure is computed from predictions.csv alone
(`fer_lib.reports.report_from_predictions`). Every figure names the actors it was measured on.

Test-time windows (`--clip_windows`, needs `--data_dir`): RAVDESS clips last 2.9-5.3 s, the model sees
a 3 s window, and the cache holds one window per clip. This option opens each raw clip again
(`fer_lib.data.media`, as prediction does), classifies windows covering the whole clip (a hop of
`--hop`, default half a window, the last one ending at the clip's end) and averages their logits.
Its report goes to a `windows/` folder beside each single-window one, and `windows.md` puts both
side by side: the single-window figures stay the headline, the windowed ones are reported beside them.

Bad input ends the command with one line on stderr and exit code 2, before any work: a missing or
damaged checkpoint, a missing or foreign cache, an unknown modality or split, no cached clip of the
requested actors, a device this machine does not have (`--device cuda:7`), an output folder that
cannot be written or whose disk is full.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from fer_lib import cli, devices, show
from fer_lib import modalities as modality_names
from fer_lib.data import cache
from fer_lib.data.splits import Split
from fer_lib.errors import FerError
from fer_lib.fileio import atomic_write_text, check_writable
from fer_lib.predictions import Predictions
from fer_lib.reports import ABLATION_ORDER, ablation_table, fmt, markdown_table, new_dir, report_from_predictions

SPLITS = ("test", "val", "all")


class EvaluationError(FerError):
    """Evaluation cannot run; the message is one line a person can act on."""


def predict_modes(model, loader, modes: Sequence[str], progress: bool = True, desc: str = "evaluate") -> dict[str, Predictions]:
    """Run `model` over `loader` once, in each modality mode of `modes` ("av", "a", "v") per batch."""
    import torch
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    mode_modalities = {flag: modality_names.parse(flag) for flag in modes}
    paths, actors, labels, probs = [], [], [], {flag: [] for flag in modes}
    with torch.inference_mode():
        for batch in tqdm(loader, desc=desc, unit="batch", disable=not progress, leave=False):
            inputs = {k: v.to(device, non_blocking=True) for k, v in batch.items()
                      if isinstance(v, torch.Tensor) and k not in ("label", "actor")}
            for flag, modalities in mode_modalities.items():
                logits = model(inputs, modalities=modalities).logits
                probs[flag].append(torch.softmax(logits.float(), dim=-1).cpu().numpy())
            paths += list(batch["path"])
            actors.append(batch["actor"].numpy())
            labels.append(batch["label"].numpy())
    actors_, labels_ = np.concatenate(actors), np.concatenate(labels)
    return {flag: Predictions.from_probs(paths, actors_, labels_, np.concatenate(p)) for flag, p in probs.items()}


def predict_clip_windows(model, clips, data_dir: str | Path, modes: Sequence[str], input_cfg, hop: Optional[float] = None,
                         progress: bool = True) -> dict[str, Predictions]:
    """Per clip and mode, the mean logits of windows covering the whole raw clip (module docstring).

    `clips`: the dataset's RavdessClip records (matched to the raw files of `data_dir` by name). Each clip
    is decoded and its faces tracked once; every mode reads the same windows.
    """
    import torch
    from tqdm.auto import tqdm

    from fer_lib.data.index import build_index
    from fer_lib.data.media import VideoWindows, open_media
    from fer_lib.predict import window_logits

    raw = {clip.stem: clip.path for clip in build_index(data_dir, progress=False).clips}
    missing = [clip.stem for clip in clips if clip.stem not in raw]
    if missing:
        raise EvaluationError(f"{len(missing)} evaluated clips are not among the raw clips of {data_dir} "
                              f"(e.g. {missing[0]}): --clip_windows needs the clips the cache was made from")
    seconds = input_cfg.num_samples / input_cfg.sample_rate
    device = next(model.parameters()).device
    logits = {flag: [] for flag in modes}
    for clip in tqdm(clips, desc="windows", unit="clip", disable=not progress, leave=False):
        media = open_media(raw[clip.stem], input_cfg.sample_rate)
        windows = list(VideoWindows(raw[clip.stem], media, input_cfg, hop or seconds / 2, use_audio=True,
                                    use_visual=True, device=device))
        for flag in modes:
            wanted = modality_names.parse(flag)
            usable = [w for w in windows if set(w.modalities) & set(wanted)]
            if not usable:
                raise EvaluationError(f"{clip.stem}: no window has {modality_names.display_name(flag)} input")
            logits[flag].append(window_logits(model, usable, wanted).mean(axis=0))
    actors, labels = np.array([c.actor for c in clips]), np.array([c.label for c in clips])
    paths = [str(c.path) for c in clips]
    return {flag: Predictions.from_probs(paths, actors, labels, torch.from_numpy(np.stack(rows)).softmax(dim=-1).numpy())
            for flag, rows in logits.items()}


def evaluate(checkpoint: str | Path, cache_dir: Optional[str | Path] = None, out: Optional[str | Path] = None,
             modalities: Optional[str] = None, split: str = "test", ablation: bool = False, batch_size: int = 8,
             device=None, num_workers: int = 0, progress: bool = True, verbose: bool = True,
             data_dir: Optional[str | Path] = None, clip_windows: bool = False, hop: Optional[float] = None,
             allow_other_frozen_weights: bool = False, allow_incomplete: bool = False) -> dict:
    """Evaluate `checkpoint` on the cached clips of one part of its split (module docstring).

    Returns {"out_dir": folder written, "results": {modality flag: metrics dict}, "ablation": rows or None,
    "subtitle": the split description, "files": {"predictions", "confusion", "ablation" ...: paths},
    "windows": {modality flag: metrics dict} with `clip_windows` (needs `data_dir`; `hop` seconds), else None}.
    `ablation=True` evaluates "a", "v" and "av" from the same weights (one pass over the data) and
    ignores `modalities`. `modalities=None`: those the checkpoint was trained with (its config.json).
    `data_dir`: raw clips, preprocessed into `cache_dir` first when needed. A run that its folder holds
    only in part (run_folder.sync_note) raises IncompleteRunError unless `allow_incomplete`; then, as for a
    stopped run, the note is shown and written into the report and its subtitle. Raises a FerError (one line).
    """
    from fer_lib.data.dataset import RavdessDataset, make_loader
    from fer_lib.preprocess import ensure_cache
    from fer_lib.training import checkpoint as checkpoints
    from fer_lib.training import run_folder

    if modalities is not None:
        modality_names.parse(modalities)
    if split not in SPLITS:
        raise EvaluationError(f"unknown split {split!r}: use test, val or all")
    if clip_windows and data_dir is None:
        raise EvaluationError("--clip_windows opens the raw clips again: give --data_dir (the raw RAVDESS clips)")
    device = devices.resolve(device)
    ckpt_dir = checkpoints.resolve(checkpoint)
    sync_note = run_folder.check_synced(ckpt_dir, allow_incomplete)
    out_root = check_writable(Path(out) if out else checkpoints.eval_dir(ckpt_dir))
    cache_dir = ensure_cache(data_dir, cache_dir)  # before the (slow) model load: bad input fails fast
    manifest = cache.read_manifest(cache_dir)
    trained = checkpoints.load_model(ckpt_dir, device, allow_other_frozen_weights)
    cache.check_inputs(cache_dir, trained.config.input)
    modalities = modalities or trained.trained_modalities
    modes = list(ABLATION_ORDER) if ablation else [modalities]
    trained_hash = trained.split.get("manifest_hash")
    if trained_hash and trained_hash != manifest.get("hash") and verbose:
        print(f"warning: the checkpoint was trained on a cache with hash {trained_hash}, this cache has "
              f"{manifest.get('hash')} (other preprocessing parameters)", file=sys.stderr)
    split_actors = Split.from_dict(trained.split)
    actors = None if split == "all" else split_actors.parts()[split]
    if split != "all" and not actors:
        raise EvaluationError(f"the checkpoint's split.json has no {split} actors")
    dataset = RavdessDataset(cache_dir, actors)
    subtitle = split_actors.describe_part(split)
    if sync_note is not None:
        subtitle = f"{subtitle} · {sync_note.short}"
        if verbose:
            show.warning(sync_note.line)
    predictions = predict_modes(trained.model, make_loader(dataset, batch_size, num_workers), modes, progress=progress)

    folder = new_dir(out_root, f"{trained.name}-{split}-{'ablation' if ablation else modalities}")
    results = {}
    for flag in modes:
        info = {**trained.provenance(), "split_name": split_actors.name, "part": split,
                "actors": sorted(set(int(a) for a in predictions[flag].actors)), "modalities": flag,
                "modalities_name": modality_names.display_name(flag), "cache_dir": str(cache_dir),
                "cache_hash": manifest.get("hash"), "preset": trained.config.preset,
                **({"run_state": sync_note.line} if sync_note is not None else {})}
        results[flag] = report_from_predictions(predictions[flag], folder / flag if ablation else folder, subtitle, info)
    rows = ablation_table(results, folder, subtitle) if ablation else None
    windowed = None
    if clip_windows:
        by_window = predict_clip_windows(trained.model, dataset.clips, data_dir, modes, trained.config.input, hop,
                                         progress)
        windowed = {flag: report_from_predictions(by_window[flag], (folder / flag if ablation else folder) / "windows",
                                                  f"{subtitle}, windows over the whole clip",
                                                  {**trained.provenance(), "modalities": flag,
                                                   "aggregation": "mean logits of windows covering the clip"})
                    for flag in modes}
        atomic_write_text(folder / "windows.md", _windows_markdown(results, windowed, subtitle))
    main_dir = folder / "av" if ablation else folder
    files = {"predictions": main_dir / "predictions.csv", "confusion": main_dir / "confusion.png",
             "report": main_dir / "report.md"}
    if ablation:
        files.update(ablation=folder / "ablation.md", ablation_figure=folder / "ablation.png")
    if clip_windows:
        files["windows"] = folder / "windows.md"
    if verbose:
        print(f"evaluated {trained.provenance()['checkpoint']} on {subtitle}: {len(dataset)} clips")
        print(markdown_table(("mode", "WAR %", "UAR %", "macro-F1 %"),
                             [(modality_names.display_name(f), fmt(m["war"]), fmt(m["uar"]), fmt(m["macro_f1"]))
                              for f, m in results.items()]))
        if windowed:
            print(_windows_markdown(results, windowed, subtitle))
        print(f"results: {folder}")
    return {"out_dir": str(folder), "results": results, "ablation": rows, "subtitle": subtitle, "files": files,
            "windows": windowed}


def _windows_markdown(single: dict, windowed: dict, subtitle: str) -> str:
    rows = [(modality_names.display_name(flag), name, fmt(m["war"]), fmt(m["uar"]), fmt(m["macro_f1"]))
            for flag in windowed for name, m in (("one 3 s window (cache)", single[flag]),
                                                 ("windows over the whole clip", windowed[flag]))]
    return "\n".join([f"# One window vs windows over the whole clip: {subtitle}", "",
                      markdown_table(("mode", "input", "WAR %", "UAR %", "macro-F1 %"), rows), ""])


@cli.command()
def main(argv: Optional[list[str]] = None) -> int:
    parser = cli.ArgumentParser(prog="python -m fer_lib.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True,
                        help="checkpoint folder (runs/<name>/checkpoints/best), run folder or hf://USER/NAME[@REVISION]")
    parser.add_argument("--cache_dir", help="the preprocessing cache (cache/preprocessed)")
    parser.add_argument("--data_dir", help="raw RAVDESS clips, preprocessed into --cache_dir first if needed")
    parser.add_argument("--out", default=None, help="parent folder of the results (default runs/<name>/eval)")
    parser.add_argument("--modalities", default=None,
                        help="av, a (audio only) or v (visual only); default: those the checkpoint was trained with")
    parser.add_argument("--split", default="test", help="test (default), val or all")
    parser.add_argument("--ablation", action="store_true", help="audio-only, visual-only and both, one table")
    parser.add_argument("--batch_size", type=cli.POSITIVE_INT, default=8)
    parser.add_argument("--num_workers", type=cli.NON_NEGATIVE_INT, default=0)
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    parser.add_argument("--no_progress", action="store_true")
    parser.add_argument("--clip_windows", action="store_true",
                        help="also average the logits of windows covering each whole raw clip (needs --data_dir)")
    parser.add_argument("--hop", type=cli.POSITIVE_FLOAT, default=None,
                        help="seconds between the windows of --clip_windows (default half a window)")
    parser.add_argument("--allow_other_frozen_weights", action="store_true",
                        help="evaluate although the pretrained weights differ from those the checkpoint was trained with")
    cli.add_allow_incomplete(parser)
    args = parser.parse_args(argv)
    evaluate(args.checkpoint, args.cache_dir, args.out, modalities=args.modalities, split=args.split,
             ablation=args.ablation, batch_size=args.batch_size, device=args.device, num_workers=args.num_workers,
             progress=not args.no_progress, data_dir=args.data_dir, clip_windows=args.clip_windows, hop=args.hop,
             allow_other_frozen_weights=args.allow_other_frozen_weights, allow_incomplete=args.allow_incomplete)
    return 0


if __name__ == "__main__":
    sys.exit(main())
