"""Tests of WebAssembly plugins."""
