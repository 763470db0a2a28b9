"""The dbt side of the warehouse: how Dagster runs the dbt project (plain Python, no Dagster)."""
