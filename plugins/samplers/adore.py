"""Placeholder for the adore plugin (being written)."""
