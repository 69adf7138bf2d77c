"""Sync engine: pollers, outbox, lease."""
