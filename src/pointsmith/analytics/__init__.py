"""Read-only reports: SQL that returns plain rows, no domain model."""
