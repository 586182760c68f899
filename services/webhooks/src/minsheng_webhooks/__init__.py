"""Webhook relay: events delivered to HTTP subscribers, signed, retried, logged."""

from minsheng_webhooks.signing import sign, verify_signature

__all__ = ["sign", "verify_signature"]
