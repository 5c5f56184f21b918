"""Keys for signed requests (``Orchestrion-HMAC``): created, listed, rotated and revoked
like API keys, and checked for the gateway (``/internal/auth/hmac-keys/verify``)."""
