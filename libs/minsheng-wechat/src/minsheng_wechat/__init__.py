"""WeChat Official Account protocol: signatures, safe-mode crypto, message XML and the message API client."""
