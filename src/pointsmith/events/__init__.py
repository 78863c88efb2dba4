"""Events: what members do, ingested idempotently by id (CONTRACT §2)."""
