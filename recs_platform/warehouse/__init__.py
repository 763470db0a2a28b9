"""Loading the landing zone into the warehouse: DuckDB locally, Snowflake in production."""
