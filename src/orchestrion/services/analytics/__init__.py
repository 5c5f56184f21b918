"""The analytics service: usage, performance and cost projections built from events."""
