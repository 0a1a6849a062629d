"""Placeholder for the positive-aware plugin (being written)."""
