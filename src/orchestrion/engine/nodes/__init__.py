"""Step type implementations; :mod:`.builtin` holds the ones every installation has."""
