"""Synchronous drivers that chain the stages and own the threads."""
