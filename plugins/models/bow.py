"""Placeholder for the bow plugin (being written)."""
