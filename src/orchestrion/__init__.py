"""Orchestrion: a frontend-ready backend for AI workflow orchestration."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("orchestrion")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"
