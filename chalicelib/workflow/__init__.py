"""Workflow model, validation, graph algorithms and file formats."""
