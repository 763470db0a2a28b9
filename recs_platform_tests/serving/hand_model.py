"""Sessions small enough to rank by hand."""

# After a: b 3 times, c twice, d once. Popularity: a 6, b 4, c 3, d 2, e 1.
HAND_SESSIONS = [
    ["a", "b"],
    ["a", "b"],
    ["a", "b", "c"],
    ["a", "c"],
    ["a", "c", "d"],
    ["a", "d", "e"],
    ["b"],
]
