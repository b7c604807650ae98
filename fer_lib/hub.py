"""Share a trained model on the Hugging Face Hub: the folder that is uploaded, its model card, the upload.

    python -m fer_lib.hub save --run RUN_DIR --out DIR [--checkpoint best|last] [--repo_id USER/NAME]
    python -m fer_lib.hub push --run RUN_DIR --repo_id USER/NAME [--private] [--checkpoint best|last]

or, in a notebook (04), `save(run_dir, out)` and `push(run_dir, repo_id)`. Someone else then uses the
model wherever a checkpoint is accepted, as `hf://USER/NAME` or `hf://USER/NAME@REVISION`
(`--checkpoint` of evaluate and predict, notebooks 04 and 05), or `EmotionModel.from_pretrained("USER/NAME")`:
`fer_lib.training.checkpoint.load_model` fetches and loads it like a run folder.

The folder has huggingface_hub's layout of a PyTorchModelHubMixin model (config.json + model.safetensors)
and what loading and the card need besides:

    config.json         the checkpoint's config: {"model": the preset's ModelConfig, with each encoder's hub id
                        and pinned revision, "train": TrainConfig, "frozen_weights": {part: fingerprint of
                        the encoder weights it was trained with}}
    model.safetensors   the trained weights only: heads, layer mixes, LoRA adapters, and any part that comes
                        from no hub repository (the tiny preset's random encoders); never a frozen encoder
    split.json          the actors of train / val / test
    trainer_state.json  the checkpoint's epoch and optimizer step
    README.md           the model card (`model_card`): made from the run's own files, nothing else
    confusion.png, ablation.png   the card's figures, copied from the run's evaluation (when there is one)

Loading fetches each frozen encoder from the hub at its pinned revision and checks its fingerprint, as for
a run folder. The mixin class itself is not used: it would save the whole state dict (GBs of frozen
encoders that are on the hub already) and write config.json from `__init__`'s arguments (modules here).

The card's numbers come from the newest evaluation of this checkpoint on its test actors in the run's
`eval/` (`python -m fer_lib.evaluate --checkpoint RUN --ablation`, notebook 04), recognised by the
checkpoint epoch it records; a run without one gets a card that says "not evaluated", and `push` warns.

`push` takes the token from the Colab secret HF_TOKEN, else the environment variable HF_TOKEN, else a
`hf auth login`; never a prompt. No token, or one that cannot write, is one line saying how to set one.
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from fer_lib import EMOTIONS, cli
from fer_lib import modalities as modality_names
from fer_lib.colab import colab_secret
from fer_lib.config import LFM2_ID, PARAKEET_ID, SIGLIP2_ID
from fer_lib.data.download import CITATION
from fer_lib.data.splits import Split, actor_ranges
from fer_lib.errors import FerError, one_line
from fer_lib.fileio import atomic_copy, atomic_write_text, check_writable
from fer_lib.metrics import METRIC_NAMES, SUMMARY_METRICS
from fer_lib.reports import ablation_markdown, fmt, markdown_table, per_class_markdown
from fer_lib.training import checkpoint as checkpoints

CHECKPOINTS = ("best", "last")
CARD = "README.md"
LICENCE = "cc-by-nc-sa-4.0"  # RAVDESS's licence, which the weights keep (the card's Licence section says why)
# The licences of the pretrained encoders, as their hub repositories state them.
ENCODER_LICENCES = {SIGLIP2_ID: "Apache-2.0", PARAKEET_ID: "CC-BY-4.0", LFM2_ID: "LFM Open License v1.0 (lfm1.0)"}
PARTS = (("audio_encoder", "audio", "encoder"), ("visual_encoder", "visual", "encoder"), ("backbone", "fusion", "backbone"))
METRIC_TYPES = {"war": "accuracy", "uar": "recall", "macro_f1": "f1"}  # model-index metric types
TOKEN_HELP = ("make a token with write access at https://huggingface.co/settings/tokens and set it as HF_TOKEN "
              "(Colab: the key icon on the left, Secrets, with notebook access; elsewhere the environment "
              "variable, or `hf auth login`)")
BIBTEX = """@article{livingstone2018ravdess,
  title   = {The Ryerson Audio-Visual Database of Emotional Speech and Song (RAVDESS): A dynamic, multimodal
             set of facial and vocal expressions in North American English},
  author  = {Livingstone, Steven R. and Russo, Frank A.},
  journal = {PLoS ONE}, volume = {13}, number = {5}, pages = {e0196391}, year = {2018},
  doi     = {10.1371/journal.pone.0196391}
}"""


class HubError(FerError):
    """A model cannot be saved or uploaded for sharing; the message is one line."""


@dataclass
class Evaluation:
    """A run's evaluation of one checkpoint on its test actors, as the card reports it."""

    folder: Path  # eval/<checkpoint>-test-.../
    metrics: dict  # metrics.json of the modalities the run trained with
    ablation: Optional[list[dict]]  # ablation.json's rows (a, v, av), when the evaluation was an ablation
    figures: dict[str, Path]  # file name in the shared folder -> the figure in the run


@dataclass
class SharedModel:
    """A saved folder: what `push` uploads."""

    folder: Path
    bytes: int
    epoch: Optional[int]
    evaluation: Optional[Evaluation]  # None: not evaluated
    card: object  # huggingface_hub.ModelCard

    def commit_message(self, run_name: str, checkpoint: str) -> str:
        what = f"fer_lib model from run {run_name}, {checkpoint} checkpoint (epoch {self.epoch})"
        if self.evaluation is None:
            return f"{what}: not evaluated"
        m = self.evaluation.metrics
        return f"{what}: {m['subtitle']}: WAR {fmt(m['war'])}%, UAR {fmt(m['uar'])}%, macro-F1 {fmt(m['macro_f1'])}%"


def save(run_dir: str | Path, out: str | Path, checkpoint: str = "best", repo_id: Optional[str] = None,
         verbose: bool = True) -> SharedModel:
    """Write the folder that would be uploaded (module docstring) into `out`, a new or empty folder.

    `checkpoint`: best or last of the run folder `run_dir`; `repo_id` (USER/NAME) is only written into the card's
    examples. Raises HubError (one line) for a run without that checkpoint, an encoder that others could not
    fetch (a local directory), or an `out` that holds files already.
    """
    run_dir = Path(run_dir).expanduser()
    if repo_id is not None:
        check_repo_id(repo_id)
    ckpt_dir = checkpoint_dir(run_dir, checkpoint)
    loaded = checkpoints.load(ckpt_dir, checkpoints.INFERENCE_FILES)
    _check_sources(loaded.config)
    out = check_writable(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise HubError(f"{out} is not an empty folder: give a new one (nothing there is overwritten)")
    epoch = loaded.progress.get("epoch")
    modalities = str(loaded.config["train"].get("modalities", "av"))
    evaluation = find_evaluation(run_dir, checkpoint, epoch, modalities)
    card = model_card(loaded.config, loaded.progress, loaded.split, evaluation, run_dir.name, checkpoint, repo_id)

    out.mkdir(parents=True, exist_ok=True)
    for name in checkpoints.INFERENCE_FILES:
        atomic_copy(ckpt_dir / name, out / name)
    for name, figure in (evaluation.figures if evaluation else {}).items():
        atomic_copy(figure, out / name)
    atomic_write_text(out / CARD, str(card))
    size = sum(path.stat().st_size for path in out.iterdir())
    if verbose:
        print(f"saved {run_dir.name} ({checkpoint} checkpoint, epoch {epoch}) -> {out}: {size / 1e6:.1f} MB in "
              f"{len(list(out.iterdir()))} files" + ("" if evaluation else f"; {not_evaluated_line(run_dir, checkpoint)}"))
    return SharedModel(out, size, epoch, evaluation, card)


def push(run_dir: str | Path, repo_id: str, private: bool = False, checkpoint: str = "best",
         token: Optional[str] = None, verbose: bool = True) -> str:
    """Save the run's `checkpoint` (`save`) into a temporary folder and upload it to `repo_id` (created when
    missing; `private` then). Returns the commit's hub id, hf://USER/NAME@<commit>, which loads exactly this
    upload. Raises HubError (one line) for a bad repo id, no token, a token that cannot write, a failed upload."""
    from huggingface_hub import HfApi

    run_dir = Path(run_dir).expanduser()
    check_repo_id(repo_id)
    checkpoint_dir(run_dir, checkpoint)  # before the token: the first thing to fix first
    token = token or hub_token()
    if not token:
        raise HubError(f"no Hugging Face token to upload {repo_id} with: {TOKEN_HELP}")
    with tempfile.TemporaryDirectory(prefix="fer_hub_") as tmp:
        shared = save(run_dir, Path(tmp) / "model", checkpoint, repo_id, verbose=False)
        if shared.evaluation is None:
            print(f"warning: {not_evaluated_line(run_dir, checkpoint)}; the model card says so", file=sys.stderr)
        api = HfApi(token=token)
        try:
            api.create_repo(repo_id, private=private, exist_ok=True)
            commit = api.upload_folder(repo_id=repo_id, folder_path=shared.folder,
                                       commit_message=shared.commit_message(run_dir.name, checkpoint))
        except OSError as exc:  # huggingface_hub's HTTP errors and the network's are OSErrors
            status = getattr(getattr(exc, "response", None), "status_code", None)
            if status in (401, 403):
                raise HubError(f"the Hugging Face token cannot write to {repo_id} (HTTP {status}): {TOKEN_HELP}") from None
            raise HubError(f"cannot upload to {repo_id}: {one_line(exc)}") from None
    hub_id = f"{checkpoints.HUB_PREFIX}{repo_id}@{commit.oid}"
    if verbose:
        print(f"pushed {run_dir.name} ({checkpoint} checkpoint, {shared.bytes / 1e6:.1f} MB) to "
              f"https://huggingface.co/{repo_id}; load exactly this upload with {hub_id}")
    return hub_id


def checkpoint_dir(run_dir: Path, checkpoint: str) -> Path:
    """runs/<name>/checkpoints/<checkpoint> (best or last); HubError (one line) when the run has none."""
    if checkpoint not in CHECKPOINTS:
        raise HubError(f"--checkpoint must be best or last, got {checkpoint!r}")
    found = checkpoints.find(run_dir, checkpoint) if run_dir.is_dir() else None
    if found is None:
        raise HubError(f"no run folder with checkpoints/{checkpoint} at {run_dir}: give runs/<name>/ of a trained run"
                       + (" (or --checkpoint last)" if checkpoint == "best" else ""))
    return found


def check_repo_id(repo_id: str) -> str:
    """`repo_id` when it is a hub model id USER/NAME; HubError (one line) otherwise."""
    try:
        _, revision = checkpoints.parse_hub_id(f"{checkpoints.HUB_PREFIX}{repo_id}")
    except checkpoints.CheckpointError:
        revision = "not an id"
    if revision is not None:
        raise HubError(f"--repo_id must be USER/NAME (letters, digits, '-', '_', '.'), got {repo_id!r}")
    return repo_id


def hub_token() -> Optional[str]:
    """The Colab secret HF_TOKEN, else huggingface_hub's token (HF_TOKEN in the environment, or `hf auth login`)."""
    from huggingface_hub import get_token

    return colab_secret("HF_TOKEN") or get_token()


def not_evaluated_line(run_dir: Path, checkpoint: str) -> str:
    return (f"the {checkpoint} checkpoint of {run_dir.name} has no evaluation on its test actors, so the model card "
            f"says 'not evaluated': run python -m fer_lib.evaluate --checkpoint {run_dir} --ablation (notebook 04) first")


def find_evaluation(run_dir: Path, checkpoint: str, epoch: Optional[int], modalities: str) -> Optional[Evaluation]:
    """The newest evaluation in `run_dir/eval/` of this checkpoint (its name and epoch) on its test actors, in the
    modalities it was trained with; an ablation (which has all three modes) is preferred. None when there is none."""
    if epoch is None:
        return None
    found = []
    for folder in (run_dir / "eval").glob(f"{checkpoint}-test-*"):
        ablation = (folder / "ablation.json").is_file()
        main = folder / modalities if ablation else folder
        try:
            metrics = json.loads((main / "metrics.json").read_text())
        except (OSError, ValueError):
            continue
        if (metrics.get("checkpoint_epoch"), metrics.get("modalities"), metrics.get("part")) == (epoch, modalities, "test"):
            found.append((ablation, folder.stat().st_mtime, folder, main, metrics))
    if not found:
        return None
    ablation, _, folder, main, metrics = max(found, key=lambda item: item[:2])
    figures = {"confusion.png": main / "confusion.png"}
    rows = None
    if ablation:
        rows = json.loads((folder / "ablation.json").read_text())["rows"]
        figures["ablation.png"] = folder / "ablation.png"
    return Evaluation(folder, metrics, rows, {name: path for name, path in figures.items() if path.is_file()})


def _check_sources(config: dict) -> None:
    """HubError when a pretrained part comes from a local directory: whoever loads the model could not fetch it."""
    for part, section, kind in PARTS:
        source = config["model"][section].get(f"{kind}_id")
        if source and (Path(source).is_absolute() or Path(source).expanduser().exists()):
            raise HubError(f"the {part} of this run comes from the local directory {source}, which others cannot "
                           "fetch: train with a hub id (the presets pin one) to share the model")


# --------------------------------------------------------------------------------------------
# The model card
# --------------------------------------------------------------------------------------------


def model_card(config: dict, progress: dict, split: dict, evaluation: Optional[Evaluation], run_name: str,
               checkpoint: str, repo_id: Optional[str] = None):
    """The card (huggingface_hub.ModelCard: YAML metadata + markdown) of a checkpoint, from its config, progress,
    split and evaluation alone."""
    from huggingface_hub import ModelCard, ModelCardData

    model, train = config["model"], config["train"]
    encoders = _encoders(config)
    name = repo_id.split("/")[1] if repo_id else run_name
    data = ModelCardData(
        model_name=name,
        language=["en"],
        license=LICENCE,
        pipeline_tag="video-classification",
        tags=["emotion-recognition", "audio-visual", "ravdess", "fer_lib", "pytorch", f"preset-{model['preset']}"],
        base_model=sorted({e["id"] for e in encoders if e["id"]}) or None,
        metrics=sorted(set(METRIC_TYPES.values())),
        eval_results=_eval_results(evaluation, checkpoint, progress.get("epoch")) if evaluation else None,
    )
    sections = [
        f"# {name}",
        _summary(model, train, progress, split, run_name, checkpoint),
        _usage(repo_id),
        _results(evaluation, checkpoint, progress.get("epoch"), run_name),
        _encoders_section(encoders, model["preset"]),
        _training(train, progress, split),
        INTENDED_USE,
        _licence(encoders),
        f"## Citation\n\nRAVDESS, on which this model was trained and evaluated:\n\n```bibtex\n{BIBTEX}\n```\n\n{CITATION}",
    ]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n\n".join(sections) + "\n")


def _encoders(config: dict) -> list[dict]:
    """One row per pretrained part: hub id (None: random init, its weights in the folder), revision, fingerprint, use."""
    rows = []
    for part, section, kind in PARTS:
        cfg = config["model"][section]
        source, revision = cfg.get(f"{kind}_id"), cfg.get(f"{kind}_revision")
        frozen = cfg.get(f"freeze_{kind}", False)
        adapted = part == "backbone" and source and not frozen and cfg.get("lora_rank", 0) > 0
        use = "frozen" if frozen else "LoRA adapters trained (in model.safetensors)" if adapted else "trained whole (in model.safetensors)"
        rows.append({"part": part, "id": source, "revision": revision, "use": use,
                     "fingerprint": (config.get("frozen_weights") or {}).get(part)})
    return rows


def _summary(model: dict, train: dict, progress: dict, split: dict, run_name: str, checkpoint: str) -> str:
    trained_on = modality_names.display_name(train.get("modalities", "av"))
    lines = [f"Audio-visual emotion recognition on RAVDESS: a 3 s window of a video (16 face crops and the audio) "
             f"-> one of {len(EMOTIONS)} emotions ({', '.join(EMOTIONS)}). Made with fer_lib, preset "
             f"`{model['preset']}`, trained on {trained_on} input, {Split.from_dict(split).describe_part('test')} "
             f"held out. This is the `{checkpoint}` checkpoint of run `{run_name}`: epoch {progress.get('epoch')}, "
             f"{progress.get('step')} optimizer steps."]
    if model["preset"] == "tiny":
        lines.append("The `tiny` preset uses small randomly initialised encoders (their weights are in "
                     "model.safetensors): a model for tests and demos, not a useful emotion recogniser (the demo "
                     "and the notebooks' smoke mode train it on synthetic RAVDESS-format clips).")
    return "\n\n".join(lines)


def _usage(repo_id: Optional[str]) -> str:
    repo = repo_id or "USER/NAME"
    return "\n".join([
        "## How to use", "",
        "With fer_lib installed (its README), emotions over time for any video:", "",
        "```python", "from fer_lib.predict import predict_video",
        f'result = predict_video("my_video.mp4", "hf://{repo}")  # timeline.png, windows.csv, prediction.json',
        'print(result["label"], result["probabilities"])', "```", "",
        "```bash", f"python -m fer_lib.predict my_video.mp4 --checkpoint hf://{repo}", "```", "",
        f'The model alone: `EmotionModel.from_pretrained("{repo}")` (`from fer_lib.models import EmotionModel`). '
        f"`hf://{repo}@REVISION` pins a commit; every report made from the model records the commit it loaded. "
        "The frozen encoders are fetched from their own repositories at the revisions below, and their weights "
        "are checked against the fingerprints they were trained with.",
    ])


def _results(evaluation: Optional[Evaluation], checkpoint: str, epoch: Optional[int], run_name: str) -> str:
    if evaluation is None:
        return ("## Results\n\n**Not evaluated.** This checkpoint was shared without an evaluation on its test actors, "
                "so there are no figures to report; `python -m fer_lib.evaluate --checkpoint hf://USER/NAME "
                "--cache_dir CACHE --ablation` measures them.")
    m = evaluation.metrics
    head = ["## Results", "",
            f"Measured by fer_lib on the clips of {m['subtitle']} (actors never seen in training or validation; split "
            f"`{m.get('split_name')}`), `{checkpoint}` checkpoint of run `{run_name}` at epoch {epoch}, "
            f"{m['clips']} clips, one 3 s window per clip. A single split of 24 actors is a first look; published "
            "RAVDESS results average 6 folds of 4 actors.", "",
            markdown_table(("input", "WAR %", "UAR %", "macro-F1 %", "clips"),
                           [(m.get("modalities_name", m.get("modalities")), fmt(m["war"]), fmt(m["uar"]),
                             fmt(m["macro_f1"]), m["clips"])]), "",
            "WAR: accuracy; UAR: mean per-class recall; macro-F1: mean per-class F1.", "",
            "### Per class", "", per_class_markdown(m), ""]
    if "confusion.png" in evaluation.figures:
        head += ["![confusion matrix: clips and % of the row](confusion.png)", ""]
    if evaluation.ablation:
        head += ["### Modality ablation", "", ablation_markdown(evaluation.ablation), ""]
        if "ablation.png" in evaluation.figures:
            head += ["![modality ablation](ablation.png)", ""]
    return "\n".join(head).rstrip()


def _eval_results(evaluation: Evaluation, checkpoint: str, epoch: Optional[int]) -> list:
    from huggingface_hub import EvalResult

    m = evaluation.metrics
    actors = actor_ranges(m.get("actors") or [])
    return [EvalResult(task_type="video-classification", task_name="Audio-visual emotion recognition (8 classes)",
                       dataset_type="ravdess", dataset_name="RAVDESS (audio-visual speech)",
                       dataset_config=str(m.get("split_name")), dataset_split=f"test (actors {actors})",
                       metric_type=METRIC_TYPES[key], metric_value=round(100 * float(m[key]), 2),
                       metric_name=f"test {METRIC_NAMES[key]} % ({m.get('modalities_name')}), {checkpoint} "
                                   f"checkpoint at epoch {epoch}",
                       metric_args=None if key == "war" else {"average": "macro"})
            for key in SUMMARY_METRICS]


def _encoders_section(encoders: list[dict], preset: str) -> str:
    rows = []
    for e in encoders:
        source = f"[{e['id']}](https://huggingface.co/{e['id']})" if e["id"] else f"random init (`{preset}` config)"
        revision = f"`{e['revision']}`" if e["revision"] else ("not pinned" if e["id"] else "-")
        licence = ENCODER_LICENCES.get(e["id"], "see its repository") if e["id"] else "-"
        fingerprint = f"`{e['fingerprint'][:16]}`" if e["fingerprint"] else "-"
        rows.append((e["part"], source, revision, e["use"], licence, fingerprint))
    return "\n".join(["## Encoders", "",
                      "Frozen parts are not in this repository: they load from their source at the pinned revision, "
                      "and their weights must match the fingerprint (SHA-256 over every tensor, full value in "
                      "config.json `frozen_weights`) or loading stops.", "",
                      markdown_table(("part", "source", "revision", "use", "licence", "fingerprint"), rows)])


def _training(train: dict, progress: dict, split: dict) -> str:
    shown = ("modalities", "fold", "batch_size", "grad_accum_steps", "max_epochs", "lr", "backbone_lr", "weight_decay",
             "warmup_ratio", "max_grad_norm", "early_stopping_metric", "early_stopping_patience", "augment",
             "embedding_cache", "seed")
    s = Split.from_dict(split)
    rows = [(key, "fixed split" if key == "fold" and train[key] is None else f"`{train[key]}`")
            for key in shown if key in train]
    rows += [(f"{part} actors", actor_ranges(actors)) for part, actors in s.parts().items()]
    best = progress.get("best_metric")
    rows += [("epochs trained", progress.get("epoch")), ("optimizer steps", progress.get("step"))]
    if best is not None:
        rows.append((f"best validation {train.get('early_stopping_metric')}",
                     f"{fmt(best)}% at epoch {progress.get('best_epoch')}"))
    return "\n".join(["## Training", "", "All settings are in config.json (`train`); the model's in `model`.", "",
                      markdown_table(("setting", "value"), rows)])


INTENDED_USE = """## Intended use and limitations

For research and teaching on audio-visual emotion recognition: comparing models on RAVDESS, a starting point
for further training, demonstrations on short videos.

fer_lib models learn from RAVDESS alone: 24 professional actors (12 female, 12 male) speaking two neutral English
sentences with a North American accent, each emotion acted on request, filmed frontally in a studio; 8 classes,
nothing else. Spontaneous emotion, other languages, accents, ages and cultures, other camera angles and light,
several people in a frame, or a face and voice that do not belong together are outside what it saw: expect
lower and uneven accuracy there. A label is the model's guess at which acted category a performance resembles,
not what a person feels.

Do not use it to make or support decisions about people (hiring, education, health, policing, access to
services) or to monitor people. Emotion recognition in workplaces and education is prohibited in the EU
(AI Act, Article 5(1)(f))."""


def _licence(encoders: list[dict]) -> str:
    used = [f"{e['id']} ({ENCODER_LICENCES.get(e['id'], 'see its repository')})" for e in encoders if e["id"]]
    return "\n".join([
        "## Licence", "",
        "RAVDESS is licensed [CC BY-NC-SA 4.0](https://creativecommons.org/licenses/by-nc-sa/4.0/). These weights "
        "were trained on it and are shared under the same licence: you may use, share and adapt them for "
        "non-commercial purposes only, giving credit (to RAVDESS, citation below, and to this model), and what you "
        "make from them must be shared under CC BY-NC-SA 4.0 too. Whether trained weights are an adaptation of "
        "their training data is not settled; sharing them under the data's licence is the cautious reading.", "",
        ("The pretrained encoders keep their own licences, which apply when the model loads them: "
         + "; ".join(used) + ".") if used else "This model uses no pretrained encoder.",
    ])


@cli.command()
def main(argv: Optional[list[str]] = None) -> int:
    parser = cli.ArgumentParser(prog="python -m fer_lib.hub", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="save|push")
    for name, help_text in (("save", "write the folder that would be uploaded"), ("push", "upload it to the Hub")):
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--run", required=True, help="the run folder, runs/<name>/")
        sub.add_argument("--checkpoint", default="best", choices=CHECKPOINTS, help="best (default) or last")
        if name == "save":
            sub.add_argument("--out", required=True, help="a new or empty folder")
            sub.add_argument("--repo_id", default=None, help="USER/NAME, for the card's examples (optional)")
        else:
            sub.add_argument("--repo_id", required=True, help="USER/NAME on the Hugging Face Hub")
            sub.add_argument("--private", action="store_true", help="create the repository private")
    args = parser.parse_args(argv)
    if args.command == "save":
        save(args.run, args.out, args.checkpoint, args.repo_id)
    else:
        push(args.run, args.repo_id, private=args.private, checkpoint=args.checkpoint)
    return 0


if __name__ == "__main__":
    sys.exit(main())
