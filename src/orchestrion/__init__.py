"""Orchestrion: a frontend-ready backend for AI workflow orchestration."""

# The single source of the version: pyproject.toml reads it from here (hatch), so
# importing the package needs no package metadata (importlib.metadata costs ~40 ms).
__version__ = "0.1.0"
