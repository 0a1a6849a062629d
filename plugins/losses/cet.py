"""Placeholder for the cet plugin (being written)."""
