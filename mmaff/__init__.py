"""Shared library of the MMAFF recipes: record schema, registry, templates, corpus build."""

__version__ = "0.1.0"
