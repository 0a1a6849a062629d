"""Placeholder for the in-batch plugin (being written)."""
