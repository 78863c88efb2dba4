"""The points ledger: double-entry postings, lots, holds, expiry and verification."""
