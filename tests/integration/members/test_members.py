"""Members: create, read, update, status changes, verification, invite codes."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pointsmith.audit import audit_log
from pointsmith.errors import InvalidMemberState, MemberExists, UnknownMember, ValidationFailed
from pointsmith.members import service
from pointsmith.members.service import INVITE_ALPHABET, INVITE_LENGTH, Status


class TestCreate:
    def test_creates_a_member_with_attributes_and_an_invite_code(self, conn: Connection) -> None:
        m = service.create(conn, "m-1", attributes={"city": "Shanghai", "years": 3})
        assert (m.id, m.status, m.attributes) == ("m-1", Status.active, {"city": "Shanghai", "years": 3})
        assert len(m.invite_code) == INVITE_LENGTH and set(m.invite_code) <= set(INVITE_ALPHABET)
        assert m.verified == {"email": False, "phone": False, "real_name": False}

    def test_keeps_the_join_date_it_is_given(self, conn: Connection) -> None:
        joined = datetime(2020, 5, 1, 8, tzinfo=UTC)
        assert service.create(conn, "m-2", joined_at=joined).joined_at == joined

    def test_refuses_an_existing_id(self, conn: Connection) -> None:
        service.create(conn, "m-1")
        with pytest.raises(MemberExists):
            service.create(conn, "m-1")

    @pytest.mark.parametrize("bad", ["", "has space", "a/b", "x" * 129])
    def test_refuses_a_malformed_id(self, conn: Connection, bad: str) -> None:
        with pytest.raises(ValidationFailed):
            service.create(conn, bad)

    def test_invite_codes_are_unique(self, conn: Connection) -> None:
        codes = {service.create(conn, f"u-{i}").invite_code for i in range(200)}
        assert len(codes) == 200

    def test_finds_a_member_by_invite_code_in_any_case(self, conn: Connection) -> None:
        m = service.create(conn, "m-1")
        found = service.find_by_invite_code(conn, m.invite_code.lower())
        assert found is not None and found.id == "m-1"


class TestUpdate:
    def test_merges_attributes_and_null_removes_one(self, conn: Connection) -> None:
        service.create(conn, "m-1", attributes={"city": "Madrid", "channel": "app"})
        m = service.update_attributes(conn, "m-1", {"city": "Lima", "channel": None, "tier_hint": 2})
        assert m.attributes == {"city": "Lima", "tier_hint": 2}

    def test_an_unknown_member_is_reported(self, conn: Connection) -> None:
        with pytest.raises(UnknownMember):
            service.update_attributes(conn, "ghost", {"a": 1})

    def test_verification_sets_its_flag(self, conn: Connection) -> None:
        service.create(conn, "m-1")
        assert service.verify(conn, "m-1", "phone").verified["phone"] is True
        with pytest.raises(ValidationFailed):
            service.verify(conn, "m-1", "fingerprint")


class TestStatus:
    def test_freeze_unfreeze_close_with_reasons_in_the_audit_log(self, conn: Connection) -> None:
        service.create(conn, "m-1")
        assert service.change_status(conn, "m-1", "freeze", reason="chargeback", actor="t").status is Status.frozen
        assert service.change_status(conn, "m-1", "unfreeze", reason="cleared", actor="t").status is Status.active
        closed = service.change_status(conn, "m-1", "close", reason="asked to", actor="t")
        assert (closed.status, closed.status_reason) == (Status.closed, "asked to")
        tags = conn.execute(sa.select(audit_log.c.tag).where(audit_log.c.subject == "m-1")
                            .order_by(audit_log.c.id)).scalars().all()
        assert tags == ["member:freeze", "member:unfreeze", "member:close"]

    def test_closed_is_final(self, conn: Connection) -> None:
        service.create(conn, "m-1")
        service.change_status(conn, "m-1", "close", reason="gone", actor="t")
        for action in ("freeze", "unfreeze", "close"):
            with pytest.raises(InvalidMemberState):
                service.change_status(conn, "m-1", action, reason="again", actor="t")

    def test_a_reason_is_required(self, conn: Connection) -> None:
        service.create(conn, "m-1")
        with pytest.raises(ValidationFailed):
            service.change_status(conn, "m-1", "freeze", reason=" ", actor="t")


def test_lists_members_by_cursor(conn: Connection) -> None:
    for i in range(5):
        service.create(conn, f"p-{i}")
    first = service.list_members(conn, limit=2)
    rest = service.list_members(conn, after=first[-1].id, limit=10)
    assert [m.id for m in first + rest] == [f"p-{i}" for i in range(5)]
