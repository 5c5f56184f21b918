"""The shared kernel: what every service needs and nothing above it.

Imports only the standard library and third-party packages, never ``orchestrion``
modules outside ``orchestrion.kernel`` (a test enforces it).
"""
