"""Pointsmith: a membership and points engine."""

__version__ = "0.1.0"
