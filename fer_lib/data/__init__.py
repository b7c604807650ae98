"""RAVDESS data: file names, synthetic clips, index, preprocessing cache, splits, dataset."""
