"""Placeholder for the synth-fn plugin (being written)."""
