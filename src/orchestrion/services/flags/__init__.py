"""Feature flags: boolean and multivariate flags, sticky percentage rollouts, targeting
rules and a kill switch, evaluated per principal (and an OpenFeature provider)."""
