"""Marketplace access: the protocol (``base``), the one HTTP client (``http``) and the platforms."""
