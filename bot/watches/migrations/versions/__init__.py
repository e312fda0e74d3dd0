"""Versioned schema changes; each file is one revision."""
