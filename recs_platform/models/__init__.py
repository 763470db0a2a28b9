"""Session recommenders behind one interface: fit on sessions, rank the catalogue for a prefix."""
