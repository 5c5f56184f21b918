"""The platform's audit trail, kept by auth: the chain, the consumer that appends other
services' lines, the routes that serve and verify it, and personal data."""
