"""Datasets built from the warehouse for training and evaluation (plain Python, no Dagster)."""
