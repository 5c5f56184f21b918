"""The auth service: tenants, users, sessions, API keys, signing keys and the audit log."""
