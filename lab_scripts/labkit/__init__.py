"""Shared helpers for the numbered lab scripts: session, stack outputs, records, console."""
