"""Webhook relay: events delivered to HTTP subscribers, signed, retried, logged."""
