"""The model package on the tiny preset: shapes, gradients, masking, ROI selection, loading, checkpoints.

Everything runs on CPU with real transformers modules and random weights; pretrained loading is exercised
with small checkpoints written by `save_pretrained` in the layout of the real hub ones.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import (
    Lfm2Config,
    Lfm2ForCausalLM,
    ParakeetCTCConfig,
    ParakeetFeatureExtractor,
    ParakeetForCTC,
    Siglip2Config,
    Siglip2Model,
    Siglip2VisionConfig,
    Siglip2VisionModel,
    SiglipConfig,
    SiglipModel,
    SiglipVisionConfig,
    SiglipVisionModel,
)

from fer_lib.config import (
    TINY_AUDIO_ENCODER,
    TINY_LFM2,
    TINY_VISUAL_ENCODER,
    ConfigError,
    get_preset,
)
from fer_lib.models import CheckpointMismatchError, EmotionModelOutput, PretrainedLoadError, build_model
from fer_lib.models.roi import CONTEXT_LATTICE, ROITokenCompression, canonical_landmarks
from fer_lib.models.sizes import build_for_sizing, estimate_training_memory, parameter_table
from fer_lib.models.visual import VisionTower

BATCH = 2
TINY_TEXT = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, vocab_size=64)


def make_batch(cfg, batch: int = BATCH, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    size, frames = cfg.input.image_size, cfg.input.num_frames
    landmarks = canonical_landmarks(size) + torch.randn(batch, frames, 5, 2, generator=generator) * 3
    return {
        "audio": 0.1 * torch.randn(batch, cfg.input.num_samples, generator=generator),
        "audio_lengths": torch.tensor([cfg.input.num_samples, cfg.input.num_samples * 2 // 3])[:batch],
        "frames": torch.randint(0, 256, (batch, frames, 3, size, size), dtype=torch.uint8, generator=generator),
        "landmarks": landmarks,
        "label": torch.tensor([3, 5])[:batch],
    }


@pytest.fixture
def tiny_cfg():
    return get_preset("tiny")


@pytest.fixture
def model(tiny_cfg):
    torch.manual_seed(0)
    return build_model(tiny_cfg).eval()


# ---- shapes ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("modalities", [("audio", "visual"), ("audio",), ("visual",)])
def test_output_shapes_in_every_mode(model, tiny_cfg, modalities):
    out = model(make_batch(tiny_cfg), modalities=modalities)
    assert isinstance(out, EmotionModelOutput)
    assert out.logits.shape == (BATCH, 8)
    assert out.fused_embeds.shape == (BATCH, 8, tiny_cfg.fusion.output_dim)
    assert out.loss.shape == () and torch.isfinite(out.loss)
    assert (out.audio_embeds is not None) == ("audio" in modalities)
    assert (out.visual_embeds is not None) == ("visual" in modalities)
    if out.audio_embeds is not None:
        assert out.audio_embeds.shape == (BATCH, 8, tiny_cfg.audio.output_dim)
    if out.visual_embeds is not None:
        assert out.visual_embeds.shape == (BATCH, 8, TINY_VISUAL_ENCODER["hidden_size"])


def test_component_shapes(model, tiny_cfg):
    batch = make_batch(tiny_cfg)
    mel, mask = model.audio.frontend(batch["audio"], batch["audio_lengths"])
    assert mel.shape == (BATCH, 301, 80) and mask.shape == (BATCH, 301)
    audio_features = model.audio.forward_features(batch["audio"], batch["audio_lengths"])
    assert audio_features.shape == (BATCH, 2, 38, TINY_AUDIO_ENCODER["hidden_size"])  # both layers of the tiny encoder
    assert model.audio.forward_head(audio_features, batch["audio_lengths"]).shape == (BATCH, 8, 64)

    visual_features = model.visual.forward_features(batch["frames"], batch["landmarks"])
    assert visual_features.shape == (BATCH, 2, 16, 68, TINY_VISUAL_ENCODER["hidden_size"])
    assert model.visual.forward_head(visual_features).shape == (BATCH, 8, 64)
    assert model.classifier(torch.randn(BATCH, 8, 64)).shape == (BATCH, 8)


@pytest.mark.parametrize("pooling", ["mean", "max", "attention", "last"])
def test_every_temporal_pooling(tiny_cfg, pooling):
    cfg = dataclasses.replace(tiny_cfg, classifier=dataclasses.replace(tiny_cfg.classifier, pooling=pooling))
    assert build_model(cfg).eval()(make_batch(cfg), modalities=("audio",)).logits.shape == (BATCH, 8)


def test_cached_features_give_the_same_logits(model, tiny_cfg):
    batch = make_batch(tiny_cfg)
    with torch.no_grad():
        raw = model(batch)
        cached = {
            "audio_features": model.audio.forward_features(batch["audio"], batch["audio_lengths"]),
            "visual_features": model.visual.forward_features(batch["frames"], batch["landmarks"]),
            "audio_lengths": batch["audio_lengths"],
        }
        from_cache = model(cached)
        from_fp16_cache = model({**cached, **{k: cached[k].half() for k in ("audio_features", "visual_features")}})
    torch.testing.assert_close(from_cache.logits, raw.logits)
    torch.testing.assert_close(from_fp16_cache.logits, raw.logits, atol=2e-2, rtol=0)


# ---- gradients and freezing --------------------------------------------------------------------------


def test_gradients_reach_every_trainable_parameter_and_no_frozen_one(model, tiny_cfg):
    model.set_trainable("audio_encoder", False)
    model.set_trainable("visual_encoder", False)
    model.train()
    assert not model.audio.encoder.training and not model.visual.tower.training
    assert model.fusion.backbone.training and model.classifier.training

    batch = make_batch(tiny_cfg)
    # The three modes together use every parameter, the "missing" tokens included.
    loss = sum(model(batch, modalities=m).loss for m in [("audio", "visual"), ("audio",), ("visual",)])
    loss.backward()
    for name, parameter in model.named_parameters():
        frozen = name.startswith(("audio.encoder.", "visual.tower."))
        assert parameter.requires_grad != frozen, name
        if frozen:
            assert parameter.grad is None, name
        else:
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_unfreezing_restores_training_mode(model):
    model.set_trainable("visual_encoder", False)
    model.train()
    model.set_trainable("visual_encoder", True)
    assert model.visual.tower.training
    assert all(p.requires_grad for p in model.visual.tower.parameters())
    with pytest.raises(ValueError, match="unknown part"):
        model.set_trainable("tower", True)


# ---- modalities --------------------------------------------------------------------------------------


def test_a_missing_modality_changes_nothing_in_the_other_branch(model, tiny_cfg):
    batch = make_batch(tiny_cfg)
    with torch.no_grad():
        both = model(batch)
        audio_only = model({k: v for k, v in batch.items() if k not in ("frames", "landmarks")}, modalities=("audio",))
        visual_only = model(batch, modalities=("visual",))
    torch.testing.assert_close(audio_only.audio_embeds, both.audio_embeds, rtol=0, atol=0)
    torch.testing.assert_close(visual_only.visual_embeds, both.visual_embeds, rtol=0, atol=0)
    assert not torch.allclose(audio_only.fused_embeds, both.fused_embeds)  # fusion saw the missing token


def test_modality_dropout_drops_one_modality_never_both(tiny_cfg):
    cfg = dataclasses.replace(tiny_cfg, fusion=dataclasses.replace(tiny_cfg.fusion, modality_dropout=0.9))
    model = build_model(cfg)
    embeds = torch.zeros(512, 8, 64)
    model.train()
    audio, visual = model.modality_presence(embeds, embeds)
    assert (audio | visual).all()
    assert 0.3 < (~audio).float().mean() < 0.6 and 0.3 < (~visual).float().mean() < 0.6
    model.eval()
    audio, visual = model.modality_presence(embeds, embeds)
    assert audio.all() and visual.all()


def test_bad_modalities_and_missing_inputs_raise(model, tiny_cfg):
    with pytest.raises(ValueError, match="modalities"):
        model(make_batch(tiny_cfg), modalities=("text",))
    with pytest.raises(ValueError, match="'frames'"):
        model({"audio": torch.zeros(1, 48000)})


# ---- audio -------------------------------------------------------------------------------------------


def test_log_mel_matches_the_parakeet_feature_extractor(model, tiny_cfg):
    rng = np.random.default_rng(0)
    lengths = [48000, 31000, 16123]
    clips = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in lengths]
    reference = ParakeetFeatureExtractor()(clips, sampling_rate=16000, return_tensors="pt")

    audio = torch.zeros(len(clips), 48000)
    for i, clip in enumerate(clips):
        audio[i, : len(clip)] = torch.from_numpy(clip)
    features, mask = model.audio.frontend(audio, torch.tensor(lengths))
    assert torch.equal(mask, reference["attention_mask"].bool())
    torch.testing.assert_close(features, reference["input_features"], atol=1e-3, rtol=1e-3)


def test_padded_audio_does_not_leak_into_the_audio_embeddings(model, tiny_cfg):
    batch = make_batch(tiny_cfg)
    noisy = batch["audio"].clone()
    valid = batch["audio_lengths"][1]
    noisy[1, valid:] = torch.randn(noisy.shape[1] - valid)
    with torch.no_grad():
        clean = model.audio(batch["audio"], batch["audio_lengths"])
        padded_noise = model.audio(noisy, batch["audio_lengths"])
    torch.testing.assert_close(padded_noise, clean)


def test_segment_pooling_ignores_padded_frames(model):
    frames = torch.randn(2, 38, 64)
    frame_mask = model.audio.encoder_frame_mask(torch.tensor([48000, 12000]), 38)  # clip 2: 1/4 of the window
    assert frame_mask[0].all() and frame_mask[1].sum() == 10
    perturbed = frames.clone()
    perturbed[1, 10:] = torch.randn(28, 64)
    with torch.no_grad():
        pooled = model.audio.segment_pool(frames, frame_mask)
        torch.testing.assert_close(model.audio.segment_pool(perturbed, frame_mask), pooled)
    # Segments 4..8 lie in padding: an empty mix, so only the output bias remains (not NaN).
    torch.testing.assert_close(pooled[1, 3:], model.audio.segment_pool.pool.out.bias.expand(5, -1))


def test_audio_segments_tile_the_encoder_frames(model):
    mask = model.audio.segment_pool.segment_mask(38, torch.device("cpu"))  # (8, 38)
    assert (mask.sum(dim=0) == 1).all()  # every frame in exactly one segment
    assert set(mask.sum(dim=1).tolist()) == {4, 5}  # equal slices of the window, to a frame
    frame_segment = mask.float().argmax(dim=0)
    assert frame_segment[0] == 0 and frame_segment[-1] == 7 and (frame_segment.diff() >= 0).all()  # in time order


# ---- visual ------------------------------------------------------------------------------------------


def test_roi_selection_follows_the_landmarks():
    roi = ROITokenCompression(image_size=224, patch_size=16, num_tokens=68)
    grid = 14

    def chosen_face_tokens(landmarks):  # selected tokens that are not on the context lattice, as (row, col)
        indices = roi.select(landmarks.expand(1, 1, 5, 2), 1, 1).flatten()
        assert indices.unique().numel() == 68
        face = indices[~roi.is_context[indices]]
        return torch.stack([face // grid, face % grid], dim=-1).float()

    top_left = chosen_face_tokens(torch.full((5, 2), 10.0))
    bottom_right = chosen_face_tokens(torch.full((5, 2), 214.0))
    assert top_left.max() <= 8 and top_left.mean() < 4
    assert bottom_right.min() >= 5 and bottom_right.mean() > 9

    face = canonical_landmarks(224)
    chosen = roi.select(face.expand(1, 1, 5, 2), 1, 1).flatten().tolist()
    for x, y in face.tolist():
        assert int(y // 16) * grid + int(x // 16) in chosen  # the patch under every landmark
    assert roi.is_context.sum() == CONTEXT_LATTICE**2 and roi.is_context[roi.select(None, 1, 1)].sum() == 16

    # Absent or failed (NaN) landmarks fall back to the canonical face.
    canonical = roi.select(None, 1, 1)
    assert torch.equal(roi.select(torch.full((1, 1, 5, 2), float("nan")), 1, 1), canonical)


def test_siglip2_tower_cuts_patches_like_siglip(tiny_cfg):
    """A SigLIP2 (NaFlex) tower holding a SigLIP tower's weights must produce the same tokens."""
    siglip = SiglipVisionModel(SiglipVisionConfig(**TINY_VISUAL_ENCODER, vision_use_head=False)).eval()
    vision_kwargs = {k: v for k, v in TINY_VISUAL_ENCODER.items() if k != "image_size"}
    siglip2 = Siglip2VisionModel(Siglip2VisionConfig(**vision_kwargs, num_patches=196, vision_use_head=False)).eval()
    weights = siglip.state_dict()
    conv = weights["embeddings.patch_embedding.weight"]  # (D, 3, p, p)
    weights["embeddings.patch_embedding.weight"] = conv.permute(0, 2, 3, 1).reshape(conv.shape[0], -1)
    siglip2.load_state_dict({k: v for k, v in weights.items() if k in siglip2.state_dict()})

    pixels = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(VisionTower(siglip2, 224, [1, 2])(pixels), VisionTower(siglip, 224, [1, 2])(pixels))


# ---- loading pretrained checkpoints ------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Small checkpoints in the layout of the real ones: full SigLIP / SigLIP2, Parakeet CTC, LFM2 causal LM."""
    root = tmp_path_factory.mktemp("checkpoints")
    torch.manual_seed(1)
    vision_kwargs = {k: v for k, v in TINY_VISUAL_ENCODER.items() if k != "image_size"}
    models = {
        "siglip": SiglipModel(SiglipConfig(vision_config=TINY_VISUAL_ENCODER, text_config=TINY_TEXT)),
        "siglip2": Siglip2Model(Siglip2Config(vision_config=vision_kwargs, text_config=TINY_TEXT)),
        # layerdrop 0.1 as in the hub configs; loading must turn it off.
        "parakeet": ParakeetForCTC(
            ParakeetCTCConfig(encoder_config={**TINY_AUDIO_ENCODER, "layerdrop": 0.1}, vocab_size=32, pad_token_id=31)
        ),
        "lfm2": Lfm2ForCausalLM(Lfm2Config(**TINY_LFM2)),
    }
    for name, hf_model in models.items():
        hf_model.eval().save_pretrained(root / name)
    ParakeetFeatureExtractor().save_pretrained(root / "parakeet")  # the hub repo's preprocessor_config.json
    return root, models


def pretrained_cfg(tiny_cfg, root, vision: str = "siglip"):
    return dataclasses.replace(
        tiny_cfg,
        audio=dataclasses.replace(tiny_cfg.audio, encoder_id=str(root / "parakeet"), freeze_encoder=True),
        visual=dataclasses.replace(tiny_cfg.visual, encoder_id=str(root / vision), freeze_encoder=True),
        fusion=dataclasses.replace(tiny_cfg.fusion, backbone_id=str(root / "lfm2")),
    )


def test_loaded_parts_match_the_saved_models(tiny_cfg, checkpoints):
    root, hf = checkpoints
    model = build_model(pretrained_cfg(tiny_cfg, root)).eval()
    assert model.audio.encoder.config.layerdrop == 0.0
    pixels, mel, tokens = torch.randn(2, 3, 224, 224), torch.randn(2, 301, 80), torch.randn(2, 16, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.visual.tower.model(pixel_values=pixels).last_hidden_state,
                                   hf["siglip"].vision_model(pixels).last_hidden_state)
        torch.testing.assert_close(
            model.audio.encoder(mel).last_hidden_state, hf["parakeet"].encoder(mel).last_hidden_state
        )
        torch.testing.assert_close(
            model.fusion.backbone(inputs_embeds=tokens).last_hidden_state,
            hf["lfm2"].model(inputs_embeds=tokens).last_hidden_state,
        )


def test_checkpoint_round_trip_through_trainable_weights(tiny_cfg, checkpoints):
    root, _ = checkpoints
    cfg = pretrained_cfg(tiny_cfg, root, vision="siglip2")
    trained = build_model(cfg).eval()
    saved = trained.trainable_state_dict()
    assert not any(k.startswith(("audio.encoder.", "visual.tower.")) for k in saved)  # re-made from the checkpoint
    assert any(k.startswith("fusion.backbone.") for k in saved)  # pretrained but trained: its LoRA adapters saved

    torch.manual_seed(123)
    restored = build_model(cfg).eval()
    restored.load_trainable_state_dict(saved)
    batch = make_batch(cfg)
    with torch.no_grad():
        torch.testing.assert_close(restored(batch).logits, trained(batch).logits, rtol=0, atol=0)


def test_wrong_checkpoint_for_a_role_is_a_one_line_error(tiny_cfg, checkpoints):
    root, _ = checkpoints
    cfg = dataclasses.replace(tiny_cfg, visual=dataclasses.replace(tiny_cfg.visual, encoder_id=str(root / "lfm2")))
    with pytest.raises(PretrainedLoadError, match="'lfm2' checkpoint") as error:
        build_model(cfg)
    assert "\n" not in str(error.value)
    cfg = dataclasses.replace(tiny_cfg, audio=dataclasses.replace(tiny_cfg.audio, encoder_id=str(root / "nowhere")))
    with pytest.raises(PretrainedLoadError):
        build_model(cfg)


def test_load_trainable_state_dict_rejects_another_architecture(model, tiny_cfg):
    saved = model.trainable_state_dict()
    other_head = dataclasses.replace(tiny_cfg, classifier=dataclasses.replace(tiny_cfg.classifier, hidden_dims=(32,)))
    for other in (build_model(other_head), build_for_sizing(get_preset("lightweight"))):
        with pytest.raises(CheckpointMismatchError, match="does not fit") as error:
            other.load_trainable_state_dict(saved)
        assert "\n" not in str(error.value) and isinstance(error.value, ValueError)
    with pytest.raises(CheckpointMismatchError, match="missing"):
        model.load_trainable_state_dict({k: v for k, v in saved.items() if not k.startswith("classifier.")})


def test_config_mismatches_are_config_errors(tiny_cfg):
    with pytest.raises(ConfigError, match="mel bins"):
        build_model(dataclasses.replace(tiny_cfg, audio=dataclasses.replace(tiny_cfg.audio, num_mel_bins=64)))
    with pytest.raises(ConfigError, match="temporal_heads"):
        build_model(dataclasses.replace(tiny_cfg, visual=dataclasses.replace(tiny_cfg.visual, temporal_heads=5)))
    with pytest.raises(ConfigError, match="roi_tokens"):
        build_model(dataclasses.replace(tiny_cfg, visual=dataclasses.replace(tiny_cfg.visual, roi_tokens=200)))
    with pytest.raises(ConfigError, match="pooling"):
        build_model(dataclasses.replace(tiny_cfg, classifier=dataclasses.replace(tiny_cfg.classifier, pooling="sum")))


# ---- precision and sizes -----------------------------------------------------------------------------


def test_no_nan_under_bf16_autocast(model, tiny_cfg):
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(make_batch(tiny_cfg))
    out.loss.backward()
    assert torch.isfinite(out.logits).all() and torch.isfinite(out.loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_sizes_of_the_real_presets_without_download():
    lightweight = build_for_sizing(get_preset("lightweight"))
    table = parameter_table(lightweight)
    assert table["total"]["total"] == sum(p.numel() for p in lightweight.parameters())
    assert table["audio_encoder"]["trainable"] == table["visual_encoder"]["trainable"] == 0  # frozen
    assert 600e6 < table["audio_encoder"]["total"] < 620e6  # parakeet-ctc-0.6b's encoder
    assert 85e6 < table["visual_encoder"]["total"] < 87e6  # siglip2-base vision tower without its head

    full = estimate_training_memory(get_preset("full"), batch_size=8)
    light = estimate_training_memory(lightweight, batch_size=8)
    assert full["total"] > light["total"] > light["weights"] > 0
    assert light["total_gb"] == pytest.approx(light["total"] / 1024**3)


# ---- layer mixes, LoRA, pinned revisions, frozen-weight fingerprints (issue 17) -----------------------


def test_layer_mix_reads_evenly_spread_layers_and_its_weights_get_gradients(tiny_cfg):
    from fer_lib.models.layer_mix import select_layers

    assert select_layers(24, 12) == list(range(2, 25, 2)) and select_layers(12, 6) == [2, 4, 6, 8, 10, 12]
    assert select_layers(2, 12) == [1, 2] and select_layers(24, 1) == [24]
    model = build_model(tiny_cfg)
    model.set_trainable("audio_encoder", False)  # frozen encoders: the mixes still learn
    model.set_trainable("visual_encoder", False)
    model.train()
    model(make_batch(tiny_cfg)).loss.backward()
    for mix in (model.audio.layer_mix, model.visual.layer_mix):
        assert mix.logits.requires_grad and mix.logits.grad.abs().sum() > 0
        torch.testing.assert_close(mix.weights, torch.full((2,), 0.5))  # uniform at the start


def test_lora_trains_only_adapters_and_the_checkpoint_holds_nothing_else(tiny_cfg, checkpoints, tmp_path):
    """A pretrained LFM2 (a small random one written with save_pretrained) that trains gets LoRA adapters."""
    from fer_lib.config import to_dict
    from fer_lib.models.lora import TARGET_MODULES, is_adapter
    from fer_lib.training import checkpoint

    root, _ = checkpoints
    cfg = pretrained_cfg(tiny_cfg, root)
    model = build_model(cfg)
    assert model.adapted == {"backbone"}
    backbone = dict(model.fusion.backbone.named_parameters())
    adapted = {name.split(".lora_")[0].rsplit(".", 1)[-1] for name in backbone if is_adapter(name)}
    assert adapted == set(TARGET_MODULES)  # every LFM2 linear layer ...
    assert not any(is_adapter(name) and ".conv.conv." in name for name in backbone)  # ... never the depthwise conv
    for name, parameter in model.named_parameters():
        in_part = name.startswith(("audio.encoder.", "visual.tower.", "fusion.backbone."))
        assert parameter.requires_grad == (not in_part or is_adapter(name)), name

    model.train()
    model(make_batch(cfg)).loss.backward()
    assert all(p.grad is not None for n, p in backbone.items() if is_adapter(n) and "lora_B" in n)

    ckpt = checkpoint.Checkpoint(weights=model.trainable_state_dict(), state={}, progress={},
                                 config={"model": to_dict(cfg)}, split={})
    saved = checkpoint.load(checkpoint.save(ckpt, tmp_path)[0]).weights
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable <= set(saved)
    extra = set(saved) - trainable  # buffers of the heads only: no weight of a pretrained part
    assert not any(name.startswith(("audio.encoder.", "visual.tower.", "fusion.backbone.")) for name in extra)
    restored = build_model(cfg).eval()
    restored.load_trainable_state_dict(saved)
    batch = make_batch(cfg)
    with torch.no_grad():
        torch.testing.assert_close(restored(batch).logits, model.eval()(batch).logits, rtol=0, atol=0)


def test_a_saved_checkpoint_has_the_size_sizes_computes_and_full_fits_the_targets(tiny_cfg, checkpoints, tmp_path):
    """A real checkpoint (frozen pretrained encoders, a pretrained LFM2 through LoRA, AdamW after one step),
    saved and measured on disk, is the size `checkpoint_bytes` computes, which then sizes `full`."""
    from fer_lib.config import TrainConfig
    from fer_lib.models.sizes import checkpoint_bytes, embedding_cache_bytes
    from fer_lib.training import checkpoint
    from fer_lib.training.optim import build_optimizer

    root, _ = checkpoints
    model = build_model(pretrained_cfg(tiny_cfg, root)).train()
    optimizer = build_optimizer(model, TrainConfig())
    model(make_batch(model.config)).loss.backward()
    optimizer.step()
    folder, = checkpoint.save(checkpoint.Checkpoint(weights=model.trainable_state_dict(),
                                                    state={"optimizer": optimizer.state_dict()}, progress={},
                                                    config={}, split={}), tmp_path)
    saved = {path.name: path.stat().st_size for path in folder.iterdir()}
    computed = checkpoint_bytes(model)
    frozen = sum(p.numel() * p.element_size() for p in model.parameters() if not p.requires_grad)
    # Files add a few hundred bytes per tensor (names, pickling, alignment): AdamW keeps 3 per parameter tensor.
    tensors = sum(1 for p in model.parameters() if p.requires_grad)
    assert computed["weights"] <= saved[checkpoint.WEIGHTS] <= computed["weights"] + 200 * tensors + 1024
    assert computed["optimizer"] <= saved[checkpoint.STATE] <= computed["optimizer"] + 3 * 400 * tensors + 4096
    assert sum(saved.values()) < computed["total"] + frozen / 2  # no frozen weight went in

    full = build_for_sizing(get_preset("full"))
    assert checkpoint_bytes(full)["total"] <= 0.5e9  # adapters + heads with AdamW state, not 8 GB
    per_clip = embedding_cache_bytes(full)
    assert per_clip["visual"] == 2 * 6 * 16 * 68 * 768 + 8 and per_clip["audio"] == 2 * 12 * 38 * 1024 + 8
    assert 1440 * sum(per_clip.values()) < 80e9  # a Colab A100 runtime's free local disk


def test_every_pretrained_part_is_pinned_in_the_code_or_goes_through_the_revision_lock(tmp_path):
    """Each hub part of each preset is pinned to a full commit in REVISIONS, or unpinned (None) and then given
    the commit the revision lock records, so no preset loads a part at whatever the hub serves that day."""
    from fer_lib.config import PRESETS, REVISIONS, ConfigError, is_commit_hash, to_dict
    from fer_lib.models.hub_revisions import LOCK_FILE, PART_FIELDS, pin_revisions, write_lock

    revision_fields = {(section, name) for section, fields in to_dict(get_preset("full")).items()
                       if isinstance(fields, dict) for name in fields if name.endswith("_revision")}
    assert revision_fields == {(section, revision) for section, _, revision in PART_FIELDS}  # the lock knows every part
    assert all(r is None or is_commit_hash(r) for r in REVISIONS.values())
    unpinned = {hub_id for hub_id, revision in REVISIONS.items() if revision is None}
    lock = tmp_path / LOCK_FILE
    write_lock(lock, {hub_id: f"{n:040x}" for n, hub_id in enumerate(sorted(unpinned), 1)})
    for preset in PRESETS:
        cfg, locked = to_dict(get_preset(preset)), to_dict(pin_revisions(get_preset(preset), lock, say=lambda line: None))
        for section, source, revision in PART_FIELDS:
            hub_id = cfg[section][source]
            if hub_id is None:
                continue
            assert cfg[section][revision] == REVISIONS[hub_id]  # the preset takes the code's pin
            assert is_commit_hash(locked[section][revision]), (preset, hub_id)
            if REVISIONS[hub_id] is not None:
                assert locked[section][revision] == REVISIONS[hub_id]  # a code pin wins
    bad = get_preset("full")
    bad.visual.encoder_revision = "main"  # a branch moves; a commit does not
    with pytest.raises(ConfigError, match="40-hex"):
        bad.validate()


def test_a_pinned_revision_loads_that_commit_from_the_hub_cache(tiny_hub):
    """Two commits of one hub repo in a local hub cache (HF_HUB_OFFLINE): each revision loads its own weights."""
    import json
    import subprocess
    import sys

    a, b = "a" * 40, "b" * 40
    tiny_hub.move_main(b)
    script = ("import json, sys\nfrom fer_lib.models.pretrained import load_part\n"
              "out = {}\nfor rev in sys.argv[2:]:\n"
              "    m = load_part('visual_encoder', sys.argv[1], revision=rev)\n"
              "    out[rev] = float(m.state_dict()['embeddings.patch_embedding.weight'].sum())\n"
              "print(json.dumps(out))")
    proc = subprocess.run([sys.executable, "-c", script, tiny_hub.repo_id, a, b], env=tiny_hub.env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert loaded[a] == pytest.approx(tiny_hub.weights[a]) and loaded[b] == pytest.approx(tiny_hub.weights[b])
    assert tiny_hub.weights[a] != pytest.approx(tiny_hub.weights[b])


def test_the_audio_front_end_is_checked_against_the_encoder_preprocessor(tiny_cfg, checkpoints, tmp_path):
    from fer_lib.models.audio import check_frontend

    root, _ = checkpoints
    check_frontend(tiny_cfg.audio, 16000, str(root / "parakeet"))  # the defaults match ParakeetFeatureExtractor
    ParakeetFeatureExtractor(feature_size=128, hop_length=256).save_pretrained(tmp_path)
    with pytest.raises(ConfigError, match="mel bins 80 vs 128; .*hop 160 vs 256") as error:
        check_frontend(tiny_cfg.audio, 16000, str(tmp_path))
    assert "\n" not in str(error.value)
    with pytest.raises(PretrainedLoadError, match="preprocessor_config.json"):
        check_frontend(tiny_cfg.audio, 16000, str(tmp_path / "nowhere"))


def test_other_frozen_weights_stop_a_checkpoint_load_naming_the_part(tiny_cfg, checkpoints, tmp_path):
    import shutil

    from fer_lib.config import to_dict
    from fer_lib.models.fingerprint import FIELD, FrozenWeightsError, frozen_fingerprints
    from fer_lib.training import checkpoint

    root, hf = checkpoints
    local = tmp_path / "parts"
    shutil.copytree(root, local)
    cfg = pretrained_cfg(tiny_cfg, local)
    model = build_model(cfg)
    fingerprints = frozen_fingerprints(model)
    assert set(fingerprints) == {"audio_encoder", "visual_encoder", "backbone"}  # frozen, or under adapters
    ckpt = checkpoint.Checkpoint(weights=model.trainable_state_dict(), state={}, progress={},
                                 config={"model": to_dict(cfg), "train": {"modalities": "av"}, FIELD: fingerprints},
                                 split={})
    folder = checkpoint.save(ckpt, tmp_path / "run")[0]
    assert checkpoint.load_model(folder, "cpu").model is not None  # the same weights load

    changed = SiglipModel.from_pretrained(local / "siglip")  # someone's updated copy: one weight differs
    with torch.no_grad():
        changed.vision_model.encoder.layers[0].mlp.fc1.bias[0] += 1e-3
    changed.save_pretrained(local / "siglip")
    with pytest.raises(FrozenWeightsError, match="visual_encoder") as error:
        checkpoint.load_model(folder, "cpu")
    assert "\n" not in str(error.value) and "--allow_other_frozen_weights" in str(error.value)
    with pytest.warns(UserWarning, match="visual_encoder"):
        checkpoint.load_model(folder, "cpu", allow_other_frozen_weights=True)


def test_model_built_under_a_device_context_has_every_tensor_there():
    """bench/gpu.sh builds `with torch.device("cuda")`: a buffer made on the CPU stopped the first GPU run."""
    with torch.device("meta"):
        model = build_model(get_preset("tiny"), random_init=True)
    on_cpu = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.device.type != "meta"]
    assert on_cpu == []


def test_kernel_fallback_warnings_are_filtered_and_a_gpu_is_told_once(model, monkeypatch, capsys):
    """transformers' "`causal_conv1d_fn` is falling back ..." (notebooks 02-04) is gone from the output of a model
    built by build_model; on a GPU without causal-conv1d one line of ours says it costs speed, once."""
    import logging

    from fer_lib.models import dependency_warnings

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("transformers")  # the library's root logger: its handler prints to stderr
    logger.addHandler(handler)
    try:
        for gpu in (False, True, True):
            monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
            logging.Logger.warning_once.cache_clear()  # transformers says each once per process
            with torch.no_grad():
                model.fusion.backbone(inputs_embeds=torch.randn(1, 4, model.fusion.backbone.config.hidden_size))
    finally:
        logger.removeHandler(handler)
    assert [record.getMessage() for record in records] == []
    assert capsys.readouterr().err.splitlines() == [dependency_warnings.SLOWER_ON_GPU]
