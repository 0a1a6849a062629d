"""Placeholder for the lambdarank plugin (being written)."""
