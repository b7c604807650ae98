"""Sharing a model on the Hugging Face Hub, without a network, through the real code paths: a `tiny` run made by
the real trainer and evaluated, saved by `python -m fer_lib.hub save`, laid into a hub cache as huggingface_hub
lays out a download (models--USER--NAME/snapshots/<commit>/, refs/<branch or tag>) and loaded from there by
huggingface_hub's own resolution (HF_HUB_OFFLINE=1, set in conftest); the upload checked at the HfApi boundary."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from huggingface_hub import HfApi, ModelCard, ModelCardData, constants
from safetensors.torch import load_file, save_file

from fer_lib import EMOTIONS, evaluate, hub, predict
from fer_lib.config import TrainConfig, get_preset, to_dict
from fer_lib.data.dataset import RavdessDataset, make_loader
from fer_lib.models import EmotionModel, build_model
from fer_lib.predictions import load_predictions
from fer_lib.training import checkpoint

REPO = "someone/fer-tiny"
MAIN, TAGGED = "1" * 40, "2" * 40  # commits of REPO: refs/main, and refs/v1 (other weights)
pytestmark = pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")


@pytest.fixture(scope="module")
def shared(synthetic_cache, tmp_path_factory):
    """A one-epoch `tiny` run (real trainer), evaluated with the ablation, saved by the real command."""
    from fer_lib.train import train

    root = tmp_path_factory.mktemp("share")
    run = train(synthetic_cache.root, root / "runs", "tiny", TrainConfig(max_epochs=1, batch_size=4, num_workers=0),
                run_name="tiny_1ep", show_progress=False).run_dir
    report = evaluate.evaluate(run, synthetic_cache.root, ablation=True, progress=False, verbose=False)
    assert hub.main(["save", "--run", str(run), "--out", str(root / "shared"), "--repo_id", REPO]) == 0
    return SimpleNamespace(run=run, folder=root / "shared", report=report, root=root)


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty hub cache that huggingface_hub (and a child process) resolves hub ids against."""
    cache = tmp_path / "hub_cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def lay_out(cache: Path, repo_id: str, folder: Path, commit: str, refs=("main",)) -> Path:
    """`folder` where huggingface_hub caches `repo_id` at `commit`, with `refs` (branches, tags) naming it."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir(exist_ok=True)
    for ref in refs:
        (repo / "refs" / ref).write_text(commit)
    return repo / "snapshots" / commit


def probabilities(model, cache_dir) -> np.ndarray:
    """The model's class probabilities of the test actor's clips."""
    loader = make_loader(RavdessDataset(cache_dir, [3]), 4, 0)
    return evaluate.predict_modes(model, loader, ["av"], progress=False)["av"].probs


def one_error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def test_the_folder_holds_trained_weights_and_loads_to_the_runs_predictions(shared, synthetic_cache, hub_cache,
                                                                             tmp_path):
    """save -> load from the folder, and from hf://USER/NAME[@REVISION] via the hub cache: the run's predictions;
    evaluate with a hub id records the commit it loaded."""
    files = sorted(p.name for p in shared.folder.iterdir())
    assert files == ["README.md", "ablation.png", "config.json", "confusion.png", "model.safetensors", "split.json",
                     "trainer_state.json"]  # no optimizer state
    best = checkpoint.find(shared.run, "best")
    assert json.loads((shared.folder / "config.json").read_text()) == json.loads((best / "config.json").read_text())
    assert load_file(str(shared.folder / "model.safetensors")).keys() == load_file(str(best / "model.safetensors")).keys()

    # refs/main -> MAIN (these weights); the tag v1 -> TAGGED (other weights): the revision picks the files.
    lay_out(hub_cache, REPO, shared.folder, MAIN)
    other = lay_out(hub_cache, REPO, shared.folder, TAGGED, refs=("v1",))
    weights = load_file(str(other / "model.safetensors"))
    weights["classifier.mlp.4.bias"] = weights["classifier.mlp.4.bias"] + torch.arange(8.0)
    save_file(weights, str(other / "model.safetensors"))
    snapshot = checkpoint.resolve(f"hf://{REPO}@{MAIN}")
    assert snapshot == hub_cache / "models--someone--fer-tiny" / "snapshots" / MAIN
    assert checkpoint.eval_dir(snapshot) == Path("hub/someone--fer-tiny/eval")  # by default: never in the hub cache

    report = evaluate.evaluate(f"hf://{REPO}", synthetic_cache.root, out=tmp_path, progress=False, verbose=False)
    out, run_eval = Path(report["out_dir"]), Path(shared.report["out_dir"]) / "av"
    assert (out / "predictions.csv").read_text() == (run_eval / "predictions.csv").read_text()
    assert out.name == f"someone--fer-tiny@{MAIN[:7]}-test-av"
    metrics = json.loads((out / "metrics.json").read_text())
    assert {k: metrics[k] for k in ("checkpoint", "checkpoint_epoch", "hub_repo", "hub_commit")} == {
        "checkpoint": f"hf://{REPO}@{MAIN}", "checkpoint_epoch": 1, "hub_repo": REPO, "hub_commit": MAIN}
    assert f"- checkpoint: hf://{REPO}@{MAIN}" in (out / "report.md").read_text()

    tagged = checkpoint.load_model(f"hf://{REPO}@v1", "cpu")
    assert tagged.provenance()["checkpoint"] == f"hf://{REPO}@{TAGGED}" and tagged.epoch == 1
    run_probs = load_predictions(run_eval).probs  # the run's, as predictions.csv rounds them
    assert not np.allclose(probabilities(tagged.model, synthetic_cache.root), run_probs, atol=1e-3)
    model = EmotionModel.from_pretrained(REPO, device="cpu")  # USER/NAME, as transformers takes it
    state = model.state_dict()
    for name, weight in load_file(str(best / "model.safetensors")).items():  # the run's trained weights, exactly
        assert torch.equal(state[name], weight), name


def test_predict_with_a_hub_id_matches_the_run_folder_and_records_the_commit(shared, synthetic_cache, hub_cache,
                                                                             tmp_path):
    """`python -m fer_lib.predict VIDEO --checkpoint hf://USER/NAME`: the run folder's windows, the commit recorded."""
    lay_out(hub_cache, REPO, shared.folder, MAIN)
    video = str(synthetic_cache.clips.paths[8])  # 2 s: one window
    for name, ckpt in (("run", str(shared.run)), ("hub", f"hf://{REPO}")):
        assert predict.main([video, "--checkpoint", ckpt, "--out", str(tmp_path / name), "--no_progress"]) == 0
    (run_out,), (hub_out,) = (list((tmp_path / name).iterdir()) for name in ("run", "hub"))
    assert (hub_out / "windows.csv").read_text() == (run_out / "windows.csv").read_text()
    result = json.loads((hub_out / "prediction.json").read_text())
    assert (result["checkpoint"], result["hub_commit"], result["label"]) == (
        f"hf://{REPO}@{MAIN}", MAIN, json.loads((run_out / "prediction.json").read_text())["label"])


def test_the_model_card_reports_the_runs_own_numbers_and_its_metadata_validates(shared):
    card = ModelCard.load(shared.folder / "README.md")  # parses the YAML and the model-index (errors raise)
    ModelCardData(**card.data.to_dict())  # and it round-trips through huggingface_hub's own validation
    metrics = shared.report["results"]["av"]
    assert card.data.license == "cc-by-nc-sa-4.0" and card.data.pipeline_tag == "video-classification"
    assert "emotion-recognition" in card.data.tags and card.data.base_model is None  # tiny: no pretrained encoder
    results = {r.metric_type: r for r in card.data.eval_results}
    assert {k: r.metric_value for k, r in results.items()} == {
        "accuracy": round(100 * metrics["war"], 2), "recall": round(100 * metrics["uar"], 2),
        "f1": round(100 * metrics["macro_f1"], 2)}
    assert all(r.dataset_split == "test (actors 3)" and r.dataset_config == "fixed" and "epoch 1" in r.metric_name
               for r in results.values())
    text = card.text
    for row in [f"| {name} |" for name in EMOTIONS] + ["![confusion matrix", "### Modality ablation", "![modality ablation",
                                                       "| audio only |", "| visual only |", "CC BY-NC-SA 4.0",
                                                       "e0196391", "not what a person feels", "hf://someone/fer-tiny",
                                                       "| lr | `0.0001` |", "| test actors | 3 |"]:
        assert row in text, row
    assert "Not evaluated" not in text


def test_push_uploads_the_folder_at_the_hfapi_boundary(shared, tmp_path, monkeypatch, capsys):
    """Files and commit message as HfApi would send them; without an evaluation the card says so and push warns."""
    sent = []

    def create_repo(self, repo_id, **kwargs):
        sent.append(("create", repo_id, kwargs.get("private"), self.token))

    def upload_folder(self, *, repo_id, folder_path, commit_message, **kwargs):
        card = ModelCard.load(Path(folder_path) / "README.md")
        sent.append(("upload", repo_id, sorted(p.name for p in Path(folder_path).iterdir()), commit_message, card))
        return SimpleNamespace(oid="3" * 40)

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    assert hub.main(["push", "--run", str(shared.run), "--repo_id", REPO, "--private"]) == 0
    (_, repo, private, token), (_, _, files, message, _) = sent
    assert (repo, private, token) == (REPO, True, "hf_test_token")
    assert "config.json" in files and "model.safetensors" in files and "confusion.png" in files
    assert message.startswith("fer_lib model from run tiny_1ep, best checkpoint (epoch 1): test actor 3")
    assert f"load exactly this upload with hf://{REPO}@{'3' * 40}" in capsys.readouterr().out

    unevaluated = tmp_path / "runs" / "tiny_1ep"
    shutil.copytree(shared.run, unevaluated, ignore=shutil.ignore_patterns("eval"))
    sent.clear()
    assert hub.main(["push", "--run", str(unevaluated), "--repo_id", REPO]) == 0
    (_, _, private, _), (_, _, files, message, card) = sent
    assert private is False and "confusion.png" not in files and message.endswith(": not evaluated")
    assert "**Not evaluated.**" in card.text and card.data.eval_results is None
    assert "warning: the best checkpoint of tiny_1ep has no evaluation" in capsys.readouterr().err


def test_push_without_a_usable_token_or_with_a_bad_repo_id_is_one_line(shared, tmp_path, monkeypatch, capsys):
    from huggingface_hub.errors import HfHubHTTPError
    import httpx

    calls = []
    monkeypatch.setattr(HfApi, "create_repo", lambda self, *a, **k: calls.append(a))
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, *a, **k: calls.append(a))
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no_token"))
    assert hub.main(["push", "--run", str(shared.run), "--repo_id", REPO]) == 2
    assert "no Hugging Face token" in one_error_line(capsys) and not calls
    monkeypatch.setenv("HF_TOKEN", "hf_read_only")
    for bad in ("fer-tiny", "a/b/c", "some one/x", "someone/x@main"):
        assert hub.main(["push", "--run", str(shared.run), "--repo_id", bad]) == 2
        assert "--repo_id must be USER/NAME" in one_error_line(capsys) and not calls

    def forbidden(self, *args, **kwargs):
        response = httpx.Response(403, request=httpx.Request("POST", "https://huggingface.co/api/repos/create"))
        raise HfHubHTTPError("403 Forbidden: you don't have the rights to create a model under this namespace",
                             response=response)

    monkeypatch.setattr(HfApi, "create_repo", forbidden)
    assert hub.main(["push", "--run", str(shared.run), "--repo_id", REPO]) == 2
    assert "token cannot write to someone/fer-tiny (HTTP 403)" in one_error_line(capsys)
    assert hub.main(["save", "--run", str(shared.run), "--out", str(shared.folder)]) == 2  # never over a folder
    assert "not an empty folder" in one_error_line(capsys)


def test_a_bad_id_or_a_foreign_repository_is_one_line(synthetic_clips, hub_cache, tmp_path, capsys):
    video = str(synthetic_clips.paths[0])
    foreign = tmp_path / "bert"
    foreign.mkdir()
    (foreign / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 8}))
    save_file({"w": torch.zeros(2)}, str(foreign / "model.safetensors"))
    lay_out(hub_cache, "someone/bert", foreign, MAIN)
    (foreign / "split.json").write_text("{}")
    (foreign / "trainer_state.json").write_text("{}")
    lay_out(hub_cache, "someone/bert-full", foreign, MAIN)
    cases = [("hf://fer-tiny", "not a hub model id"), ("hf://someone/fer-tiny@", "not a hub model id"),
             ("hf://some one/x", "not a hub model id"),
             ("hf://someone/elsewhere", "cannot get hf://someone/elsewhere from the Hugging Face Hub"),
             (f"hf://someone/bert@{TAGGED}", "cannot get"),
             ("hf://someone/bert", "not a fer_lib checkpoint folder"),
             ("hf://someone/bert-full", "is not a fer_lib model config")]
    for hub_id, message in cases:
        assert predict.main([video, "--checkpoint", hub_id, "--out", str(tmp_path / "out")]) == 2, hub_id
        assert message in one_error_line(capsys), hub_id
    assert not (tmp_path / "out").exists()


def test_frozen_encoders_load_at_their_pinned_revision_and_are_checked(hub_cache, synthetic_clips, tmp_path, capsys):
    """A frozen SigLIP from the hub cache: not in the shared folder; loaded at the pinned commit although refs/main
    moved on; unpinned, the moved weights are a one-line fingerprint error."""
    from transformers import SiglipConfig, SiglipModel

    from fer_lib.config import TINY_VISUAL_ENCODER
    from fer_lib.models.fingerprint import FIELD, frozen_fingerprints

    torch.manual_seed(0)
    siglip = SiglipModel(SiglipConfig(vision_config=TINY_VISUAL_ENCODER, text_config=dict(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, vocab_size=64)))
    siglip.save_pretrained(tmp_path / "pinned")
    with torch.no_grad():
        siglip.vision_model.encoder.layers[0].mlp.fc1.bias += 0.5
    siglip.save_pretrained(tmp_path / "moved")
    lay_out(hub_cache, "tester/siglip", tmp_path / "pinned", MAIN, refs=())
    lay_out(hub_cache, "tester/siglip", tmp_path / "moved", TAGGED)  # refs/main: a later upload

    tiny = get_preset("tiny")
    cfg = dataclasses.replace(tiny, visual=dataclasses.replace(tiny.visual, encoder_id="tester/siglip",
                                                              encoder_revision=MAIN, freeze_encoder=True))
    model = build_model(cfg)
    config = {"model": to_dict(cfg), "train": to_dict(TrainConfig()), FIELD: frozen_fingerprints(model)}
    checkpoint.save(checkpoint.Checkpoint(model.trainable_state_dict(), {}, {"epoch": 3, "step": 9}, config,
                                          {"name": "fixed", "train": [1], "val": [2], "test": [3]}),
                    tmp_path / "run", ("best",))
    folder = hub.save(tmp_path / "run", tmp_path / "shared", verbose=False).folder
    assert not any(name.startswith("visual.tower.") for name in load_file(str(folder / "model.safetensors")))
    card = ModelCard.load(folder / "README.md")
    assert card.data.base_model == ["tester/siglip"] and f"`{MAIN}`" in card.text and "**Not evaluated.**" in card.text

    lay_out(hub_cache, "someone/fer-siglip", folder, MAIN)
    loaded = checkpoint.load_model("hf://someone/fer-siglip", "cpu")
    torch.testing.assert_close(loaded.model.visual.tower.state_dict(), model.visual.tower.state_dict(), rtol=0, atol=0)

    unpinned = json.loads((folder / "config.json").read_text())
    unpinned["model"]["visual"]["encoder_revision"] = None
    (folder / "config.json").write_text(json.dumps(unpinned))
    lay_out(hub_cache, "someone/fer-unpinned", folder, MAIN)
    video = str(synthetic_clips.paths[0])
    capsys.readouterr()
    assert predict.main([video, "--checkpoint", "hf://someone/fer-unpinned", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err  # transformers' "Loading weights" bar, then the one line
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "frozen weights of visual_encoder" in errors[0] and "Traceback" not in err
