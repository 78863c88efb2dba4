"""Program versions: published whole, immutable, and found by effective time."""
from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy.engine import Connection

from pointsmith import clock
from pointsmith.db import get_engine, unit_of_work
from pointsmith.errors import NoProgram
from pointsmith.program import service
from pointsmith.program.validation import load_program
from tests.factories import SIMPLE_PROGRAM, publish

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def test_the_first_version_is_in_force_from_the_beginning_of_time(conn: Connection) -> None:
    v1 = publish(conn)
    assert v1.version == 1 and v1.effective_at == service.BEGINNING
    assert service.active(conn, datetime(1997, 1, 1, tzinfo=UTC)).version == 1


def test_later_versions_take_effect_at_their_time(conn: Connection) -> None:
    publish(conn)
    with clock.frozen(T0):
        v2 = publish(conn, SIMPLE_PROGRAM.replace("Simple", "Second"))
    v3 = publish(conn, SIMPLE_PROGRAM.replace("Simple", "Third"), effective_at=datetime(2026, 6, 1, tzinfo=UTC))
    assert v2.effective_at == T0
    assert service.active(conn, datetime(2026, 2, 28, tzinfo=UTC)).version == 1
    assert service.active(conn, datetime(2026, 3, 2, tzinfo=UTC)).program.program.name == "Second"
    assert service.active(conn, datetime(2026, 6, 1, tzinfo=UTC)).version == v3.version
    assert [v.version for v in service.versions(conn)] == [1, 2, 3]


def test_publishing_the_same_document_again_changes_nothing(conn: Connection) -> None:
    first = publish(conn)
    again = service.publish(conn, first.program, source=SIMPLE_PROGRAM, actor="t")
    assert not again.created and again.version.version == 1


def test_there_is_no_active_program_before_one_is_published(conn: Connection) -> None:
    assert service.active_or_none(conn) is None
    with pytest.raises(NoProgram):
        service.active(conn)


def test_the_source_is_kept_as_written(conn: Connection) -> None:
    publish(conn)
    assert service.source_of(conn, 1) == SIMPLE_PROGRAM


def test_the_latest_document_applied_again_to_take_effect_now_does_so_while_it_waits(conn: Connection) -> None:
    publish(conn)
    second = SIMPLE_PROGRAM.replace("Simple", "Second")
    with clock.frozen(T0):
        scheduled = publish(conn, second, effective_at=datetime(2030, 1, 1, tzinfo=UTC))
        now = service.publish(conn, load_program(second), source=second, actor="t")
        assert now.created and now.version.effective_at == T0
        assert service.active(conn).program.program.name == "Second"
        again = service.publish(conn, load_program(second), source=second, actor="t")  # in force: a no-op
        assert not again.created and again.version.version == now.version.version
    assert scheduled.version == 2 and now.version.version == 3


def test_publishers_at_once_each_get_a_version_of_their_own(fresh_database: str) -> None:
    """Each publish reads the latest version number and writes the next: two at once must not take one."""
    engine = get_engine(fresh_database)
    rounds, writers = 15, 4
    barrier = threading.Barrier(writers)
    failures: list[BaseException] = []

    def publish_one(i: int) -> None:
        program = load_program(SIMPLE_PROGRAM.replace("name: Simple", f"name: Simple {i}"))
        for r in range(rounds):
            barrier.wait()
            try:
                with unit_of_work(engine) as conn:
                    service.publish(conn, program.model_copy(update={"program": program.program.model_copy(
                        update={"name": f"Simple {i}.{r}"})}), source="x", actor="test")
            except BaseException as e:  # every failure is the finding
                failures.append(e)

    threads = [threading.Thread(target=publish_one, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    with unit_of_work(engine) as conn:
        assert [v.version for v in service.versions(conn)] == list(range(1, rounds * writers + 1))
