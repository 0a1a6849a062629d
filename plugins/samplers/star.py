"""Placeholder for the star plugin (being written)."""
