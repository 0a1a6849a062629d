"""Placeholder for the cosent plugin (being written)."""
