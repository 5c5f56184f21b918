"""The notifications service: email, webhooks, SMS, push and in-app messages, delivered
from a durable queue with retries, plus templates, preferences and event subscriptions."""
