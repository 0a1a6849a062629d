"""Placeholder for the dhnm plugin (being written)."""
