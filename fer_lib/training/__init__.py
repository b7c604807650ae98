"""The parts of training, one concept per module; `fer_lib.train` puts them together.

    loop.py             epochs, accumulation, mixed precision, validation, early stopping
    optim.py            AdamW parameter groups (heads vs fine-tuned backbones), warmup + cosine
    sampler.py          the data order: a function of (seed, epoch), sharded across processes
    items.py            what a batch holds: trimmed to the modalities, cached features, seeded augmentation
    embedding_cache.py  frozen-encoder outputs computed once per clip (memory-mapped fp16)
    checkpoint.py       atomic last/best checkpoints: trainable weights, optimizer, RNG, progress
    run_folder.py       run names, config.json / split.json, one trainer per folder, refusing another run's folder,
                        the sync state (how far Drive holds the run)
    drive_sync.py       the run folder on Drive, copied from the runtime's disk on a schedule
    stopping.py         SIGINT / SIGTERM: finish the step, checkpoint it, one line
    logging.py          metrics.csv / metrics.json / curves.png per epoch, optional W&B
"""
