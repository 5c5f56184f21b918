"""HTTP conventions of API.md shared by every service."""
