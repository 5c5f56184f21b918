"""Tests of the content service."""
