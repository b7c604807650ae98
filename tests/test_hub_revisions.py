"""The hub revision lock (fer_lib.models.hub_revisions) against a local hub cache the tests lay out
(HF_HUB_OFFLINE=1, the `tiny_hub` fixture: two commits of a small SigLIP, `refs/main` moved between runs)."""

from __future__ import annotations

import dataclasses
import json

import huggingface_hub
import pytest

from fer_lib.config import get_preset
from fer_lib.models import build_model
from fer_lib.models.hub_revisions import LOCK_FILE, HubRevisionError, pin_revisions

A, B = "a" * 40, "b" * 40


def unpinned_cfg(repo_id: str):
    """`tiny` whose visual encoder is a hub id without a pinned revision (as nvidia/parakeet-ctc-0.6b in the presets)."""
    cfg = get_preset("tiny")
    cfg.visual = dataclasses.replace(cfg.visual, encoder_id=repo_id, encoder_revision=None, freeze_encoder=True)
    return cfg


def patch_weight_sum(model) -> float:
    return float(model.visual.tower.model.embeddings.patch_embedding.weight.detach().sum())


@pytest.fixture
def hub(tiny_hub, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tiny_hub.cache))  # read at each call
    return tiny_hub


def test_an_unpinned_part_keeps_the_commit_of_its_first_run_after_the_hub_moves(hub, synthetic_cache, tmp_path, capsys):
    from fer_lib.config import TrainConfig
    from fer_lib.train import train

    runs = tmp_path / "runs"
    quick = TrainConfig(batch_size=4, max_epochs=1, num_workers=0, warmup_ratio=0.0)
    first = train(synthetic_cache.root, runs, unpinned_cfg(hub.repo_id), quick, show_progress=False,
                  embedding_dir=tmp_path / "embeddings")
    assert json.loads((runs / LOCK_FILE).read_text()) == {hub.repo_id: A}
    assert json.loads((first.run_dir / "config.json").read_text())["model"]["visual"]["encoder_revision"] == A
    assert f"recorded the commit the hub serves now, {A}" in capsys.readouterr().out

    hub.move_main(B)  # the hub publishes another commit
    cfg = pin_revisions(unpinned_cfg(hub.repo_id), runs / LOCK_FILE)
    assert cfg.visual.encoder_revision == A
    assert patch_weight_sum(build_model(cfg)) == pytest.approx(hub.weights[A])
    said = capsys.readouterr().out
    assert said.count(f"{hub.repo_id} at {A}") == 1 and "recorded in" in said
    assert json.loads((runs / LOCK_FILE).read_text()) == {hub.repo_id: A}  # unchanged
    # Without the lock, the same config would now load the other weights: the lock is what kept them.
    assert patch_weight_sum(build_model(pin_revisions(unpinned_cfg(hub.repo_id), tmp_path / "elsewhere.json"))) \
        == pytest.approx(hub.weights[B])


def test_a_code_pin_wins_and_a_lock_disagreeing_with_it_is_a_one_line_error(hub, tmp_path):
    lock = tmp_path / LOCK_FILE
    pinned = unpinned_cfg(hub.repo_id)
    pinned.visual.encoder_revision = B
    assert pin_revisions(pinned, lock).visual.encoder_revision == B
    assert not lock.exists()  # a pinned part is never recorded
    lock.write_text(json.dumps({hub.repo_id: A}))
    with pytest.raises(HubRevisionError, match=f"records {hub.repo_id} at {A}, but the code pins {B}") as error:
        pin_revisions(pinned, lock)
    assert "\n" not in str(error.value)
    lock.write_text('{"someone/tiny-siglip": "main"}')  # a branch, not a commit
    with pytest.raises(HubRevisionError, match="not a revision lock"):
        pin_revisions(unpinned_cfg(hub.repo_id), lock)


def test_an_unpinned_part_that_cannot_be_resolved_is_a_one_line_error(hub, tmp_path):
    with pytest.raises(HubRevisionError, match="cannot find which commit of someone/absent") as error:
        pin_revisions(unpinned_cfg("someone/absent"), tmp_path / LOCK_FILE)
    assert "\n" not in str(error.value) and not (tmp_path / LOCK_FILE).exists()
