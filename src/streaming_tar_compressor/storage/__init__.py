"""Where chunks live: the local directory of the prefix (default)."""
