"""Placeholder for the minilm-full plugin (being written)."""
