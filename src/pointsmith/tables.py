"""Every table, imported in one place so migrations see the whole schema."""
from pointsmith.audit import audit_log
from pointsmith.auth.tables import api_keys
from pointsmith.benefits.tables import benefit_uses
from pointsmith.events.tables import events
from pointsmith.growth.tables import growth_entries, growth_totals
from pointsmith.idempotency import idempotency_keys
from pointsmith.jobs.tables import scheduled_jobs
from pointsmith.ledger.tables import (
    ledger_holds,
    ledger_lots,
    ledger_postings,
    ledger_transactions,
    point_balances,
)
from pointsmith.members.tables import members
from pointsmith.outbox import domain_events
from pointsmith.program.tables import program_versions
from pointsmith.rules.tables import orders, rule_awards, rule_budgets
from pointsmith.tiers.tables import member_tiers, tier_changes

__all__ = [
    "api_keys",
    "audit_log",
    "benefit_uses",
    "domain_events",
    "events",
    "growth_entries",
    "growth_totals",
    "idempotency_keys",
    "ledger_holds",
    "ledger_lots",
    "ledger_postings",
    "ledger_transactions",
    "member_tiers",
    "members",
    "orders",
    "point_balances",
    "program_versions",
    "rule_awards",
    "rule_budgets",
    "scheduled_jobs",
    "tier_changes",
]
