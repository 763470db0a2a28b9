"""The raw-event contract and the landing zone: plain Python, shared by every producer."""
