"""Single sign-on with external OpenID Connect providers (docs/identity.md)."""
