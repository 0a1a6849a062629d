"""Placeholder for the moco-filter plugin (being written)."""
