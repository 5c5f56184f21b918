"""The templates service: parameterised workflow templates and their marketplace."""
