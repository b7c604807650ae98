"""fer_lib: audio-visual emotion recognition on RAVDESS, notebook-first for Google Colab."""

__version__ = "0.1.0"

EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
"""RAVDESS emotion names; list index = class label = RAVDESS emotion code - 1."""
