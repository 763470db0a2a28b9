"""recs-platform: in-session product recommendations, from the shopper's click to the carousel."""
