"""Benchmarks: figures printed and saved, never asserted. `python -m bench` runs them all."""
