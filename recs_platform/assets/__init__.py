"""Dagster assets by stage; each is a thin wrapper around a plain-Python core."""
