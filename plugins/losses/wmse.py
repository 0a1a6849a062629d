"""Placeholder for the w-mse plugin (being written)."""
