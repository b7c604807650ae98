"""What a run stores, per preset, computed from the architectures (no measurement, no download): the
README's "Checkpoint and cache sizes" table.

    python -m bench.storage      # rewrites the block between <!-- storage:start --> and <!-- storage:end -->

A checkpoint holds the weights `trainable_state_dict` saves plus AdamW's two fp32 moments per trainable
parameter (`fer_lib.models.sizes.checkpoint_bytes`); the embedding cache holds each clip's float16 layer
outputs of both frozen encoders (`embedding_cache_bytes`), for RAVDESS's 1440 audio-visual speech clips.
"""

from __future__ import annotations

from bench.report import README
from fer_lib.config import PRESETS, get_preset
from fer_lib.models.sizes import build_for_sizing, checkpoint_bytes, embedding_cache_bytes
from fer_lib.reports import markdown_table, replace_block

RAVDESS_CLIPS = 1440
COLAB_FREE_DISK_GB = 80  # an A100 Colab runtime's local disk left free after the system (assumption, not measured)


def storage_markdown() -> str:
    rows = []
    for preset in PRESETS:
        model = build_for_sizing(get_preset(preset))
        ckpt, cache = checkpoint_bytes(model), embedding_cache_bytes(model)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        per_clip = cache["audio"] + cache["visual"]
        rows.append((f"`{preset}`", f"{trainable / 1e6:.1f}M", f"{ckpt['weights'] / 1e6:.0f} MB",
                     f"{ckpt['optimizer'] / 1e6:.0f} MB", f"**{ckpt['total'] / 1e6:.0f} MB**",
                     f"{cache['audio'] / 1e6:.2f} + {cache['visual'] / 1e6:.2f} MB",
                     f"**{RAVDESS_CLIPS * per_clip / 1e9:.1f} GB**"))
    table = markdown_table(("preset", "trainable", "checkpoint weights", "optimizer state", "checkpoint",
                            "embedding cache per clip (audio + visual)", f"for {RAVDESS_CLIPS} clips"), rows)
    return (f"Computed from the architectures by `python -m bench.storage` (not measured; 1 MB = 10^6 bytes).\n\n"
            f"{table}\n\nThe embedding cache lives on the runtime's local disk (`/content/fer_local`), which on a "
            f"Colab A100 runtime we assume has about {COLAB_FREE_DISK_GB} GB free after the system (an assumption, "
            "not a measurement). `tiny` trains its encoders, so it caches nothing; its row is what it would take "
            "with them frozen.\n")


def main() -> None:
    replace_block(README, "storage", storage_markdown())
    print(storage_markdown())


if __name__ == "__main__":
    main()
