"""Scheduled work: each job is idempotent and takes an explicit `now`."""
