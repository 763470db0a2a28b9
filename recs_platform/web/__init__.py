"""HTTP pieces the collector and the serving side share, below both: API Gateway's HTTP API
payloads (`api_gateway`) and query strings (`query`). Neither imports `collection` or `serving`,
so the collector may mount serving's routes without serving importing the collector back."""
