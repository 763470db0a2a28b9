"""Offline evaluation: next-item metrics and the session-rec protocol."""
