"""Compliance audit: proof packages and their independent verification."""
