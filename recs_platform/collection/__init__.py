"""Event collection: request parsing shared by the local collector and the Lambda twin, the
durable landing writer, and the JavaScript tracker. Plain Python, no Dagster imports."""
