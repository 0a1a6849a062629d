"""Placeholder for the bml plugin (being written)."""
