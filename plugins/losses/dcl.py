"""Placeholder for the dcl plugin (being written)."""
