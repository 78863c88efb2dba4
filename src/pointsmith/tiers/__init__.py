"""Tiers: a pure policy over growth history, and the member's tier at a time."""
