"""The single entry point: route table, authentication, policies and dispatch to services."""
