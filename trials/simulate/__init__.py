"""Synthetic trials written through the platform's own services."""
