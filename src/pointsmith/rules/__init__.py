"""Earning rules: what an event is worth in points and growth, within the program's limits."""
