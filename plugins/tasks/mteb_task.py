"""Placeholder for the mteb:NAME plugin (being written)."""
