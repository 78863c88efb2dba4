"""API keys (stored hashed) and their scopes."""
