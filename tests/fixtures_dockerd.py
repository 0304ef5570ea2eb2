"""Fixtures for the real service this module is named for (filled in by its owner)."""
