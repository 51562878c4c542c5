"""Backups of the whole database and their restore, checked against a manifest."""
