"""Converters from public dataset formats into landing-zone files."""
