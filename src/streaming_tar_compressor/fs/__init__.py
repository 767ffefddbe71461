"""The blocking local edge: walking sources and writing extracted trees."""
