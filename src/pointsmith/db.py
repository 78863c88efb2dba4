"""Database plumbing: metadata, engines, the unit of work and the migration gate.

SQLite is the embedded default; PostgreSQL (psycopg 3) is the production store.
Both run the same Alembic migrations.
"""
from __future__ import annotations

import functools
import json
import operator
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple, TypeVar, overload

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, Engine

from pointsmith import checkpointer, config
from pointsmith.clock import ensure_utc
from pointsmith.errors import DatabaseNotReady, ValidationFailed
from pointsmith.writer_lock import WriterLock

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = sa.MetaData(naming_convention=NAMING)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# JSONB on PostgreSQL (indexable, compact), JSON text on SQLite.
Json = sa.JSON().with_variant(JSONB(), "postgresql")


# big integer ids; on SQLite plain INTEGER, so an INTEGER PRIMARY KEY is the table's rowid
BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")


class Amount(sa.Numeric[Decimal]):
    """A money amount: NUMERIC(20, 6). SQLite keeps it as REAL, exact for the 15 significant digits
    an amount may have (events/validation.py; a refunded total is held to the same): read back, the
    float's shortest text is the amount itself (SQLAlchemy's own reading, by the column's scale,
    would give 12345678901.233999 for 12345678901.234)."""

    def __init__(self) -> None:
        super().__init__(20, 6)

    def result_processor(self, dialect: sa.Dialect, coltype: object) -> Any:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)  # type: ignore[no-untyped-call]
        return lambda v: None if v is None else Decimal(repr(v) if isinstance(v, float) else v)


def plain_amount(amount: Decimal) -> Decimal:
    """An amount read back as it was written, on either backend: PostgreSQL gives the column's six
    decimals (120.250000), where a message or an outcome should say 120.25."""
    return amount.quantize(Decimal(1)) if amount == amount.to_integral_value() else amount.normalize()


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC datetimes in and out; stored as timestamptz or as naive UTC text on SQLite."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        utc = ensure_utc(value)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else ensure_utc(value)


def normalize_url(url: str) -> str:
    """`postgresql://` means psycopg 3 here, as the contract says."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def get_engine(url: str | None = None) -> Engine:
    """One engine per URL per process (engines own the connection pool)."""
    key = normalize_url(config.database_url(url))
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = _create_engine(_supported(key))
        return engine


def _supported(url: str) -> str:
    """The URL, if it names a database and driver this engine runs on (one line, not a driver's traceback)."""
    parsed = sa.engine.make_url(url)
    if (parsed.get_backend_name(), parsed.get_driver_name()) not in {("sqlite", "pysqlite"), ("postgresql", "psycopg")}:
        raise ValidationFailed(f"unsupported database URL {url.split('://')[0]}://…: use sqlite:///PATH or "
                               "postgresql://USER@HOST:PORT/DB")
    return url


def json_default(value: Any) -> Any:
    """Exact numbers into JSON: whole Decimals as ints, others as floats.

    Event amounts are limited to 15 significant digits, which a float holds
    exactly, and JSON columns are read back with parse_float=Decimal.
    """
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def plain_json(value: Any) -> Any:
    """Stored JSON made wire-ready: Decimals (from parse_float) back to JSON numbers."""
    if isinstance(value, dict):
        return {k: plain_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_json(v) for v in value]
    if isinstance(value, Decimal):
        return json_default(value)
    return value


# one encoder and decoder for every call: json.dumps/loads with options build a new one each time
_ENCODER = json.JSONEncoder(default=json_default, separators=(",", ":"), ensure_ascii=False)
_DECODER = json.JSONDecoder(parse_float=Decimal)


_ORJSON = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def dumps(value: Any) -> str:
    """JSON text of a value (orjson: a tenth of the standard encoder's time, on every event's outcome).
    The standard encoder writes what orjson refuses (an integer past 64 bits), and any text with a
    null in it: orjson writes NaN and infinities as null, where the standard encoder's `NaN` is
    refused by PostgreSQL and kept by SQLite, as it always was."""
    try:
        text = orjson.dumps(value, default=json_default, option=_ORJSON)
    except orjson.JSONEncodeError:
        return _ENCODER.encode(value)
    return _ENCODER.encode(value) if b"null" in text else text.decode()


def json_size(value: Any) -> int:
    """Bytes of `value` as compact UTF-8 JSON (Decimals as their text): what a size limit counts."""
    try:
        return len(orjson.dumps(value, default=str))
    except orjson.JSONEncodeError:  # an integer past 64 bits
        return len(json.dumps(value, default=str, separators=(",", ":"), ensure_ascii=False).encode())


def loads(text: str | bytes) -> Any:
    return _DECODER.decode(text) if isinstance(text, str) else json.loads(text, parse_float=Decimal)


def _create_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                                  json_serializer=dumps, json_deserializer=loads)
        _configure_sqlite(engine)
        return engine
    # No pre-ping: it costs a round trip on every checkout (most of a balance read). A connection
    # that died with the server fails its statement, SQLAlchemy then drops the whole pool, and the
    # next checkout connects afresh; reads that can simply be repeated retry once (`retry_read`).
    return sa.create_engine(url, pool_size=10, max_overflow=20, pool_recycle=3600,
                            json_serializer=dumps, json_deserializer=loads)


def _configure_sqlite(engine: Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (see _on_begin).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        # the default page cache (2 MB) makes index upkeep read pages back once tables outgrow it
        cur.execute("PRAGMA cache_size=-131072")
        # checkpoints run mostly on a thread of their own (checkpointer.py)
        cur.execute(f"PRAGMA wal_autocheckpoint={checkpointer.BACKSTOP_PAGES}")
        cur.execute(f"PRAGMA journal_size_limit={checkpointer.LOG_LIMIT}")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the write lock up front so two writers never deadlock on upgrade.
        options = conn.get_execution_options()
        if options.get("single_statement"):
            return  # one SELECT reads a consistent snapshot on its own: no transaction needed
        # on the driver's own cursor: through SQLAlchemy's execution it was a third of an empty
        # transaction's cost (its errors, e.g. a locked database, are the driver's: see `unavailable`)
        conn.connection.driver_connection.execute(  # type: ignore[union-attr]
            "BEGIN DEFERRED" if options.get("read_only") else "BEGIN IMMEDIATE")


def unavailable(error: BaseException) -> BaseException | None:
    """The driver's error if `error` is the database's own trouble rather than the request's (locked,
    unreachable, a deadlock or serialization failure: worth sending again), else None; whether
    SQLAlchemy wrapped it or the driver raised it directly (`driver_execute`, pipelines)."""
    if isinstance(error, sa.exc.OperationalError):
        return error.orig
    if isinstance(error, sa.exc.TimeoutError):  # every pooled connection busy past the pool's timeout
        return error
    return error if isinstance(error, driver_operational_errors()) else None


def _connection_spoiled(error: BaseException) -> bool:
    """Whether a connection that met `error` should not go back to the pool: SQLite opens a file it
    cannot write read-only and stays so, and a connection that met an I/O error may hold stale state."""
    trouble = unavailable(error)
    return isinstance(trouble, sqlite3.OperationalError) and any(
        words in str(trouble) for words in ("readonly database", "disk I/O error"))


def driver_operational_errors() -> tuple[type[Exception], ...]:
    """The drivers' own classes of `unavailable` errors."""
    import psycopg  # here: a SQLite-only process need not load it until something fails

    return sqlite3.OperationalError, psycopg.OperationalError


def is_postgres(conn: Connection | Engine) -> bool:
    return conn.dialect.name == "postgresql"


def in_list(conn: Connection, column: sa.ColumnElement[Any], values: list[str]) -> sa.ColumnElement[bool]:
    """`column IN values`; on PostgreSQL `= ANY(array)`, one parameter however long the list."""
    if is_postgres(conn):
        from sqlalchemy.dialects.postgresql import ARRAY

        return column == sa.any_(sa.cast(sa.bindparam("in_list", values, literal_execute=False), ARRAY(sa.Text)))
    return column.in_(values)


def driver_in(conn: Connection, values: Sequence[Any]) -> tuple[str, tuple[Any, ...]]:
    """`IN (...)` for the driver: the SQL after the column (`= ANY(%s)` on PostgreSQL, one parameter
    however long the list; `IN (?, ...)` on SQLite) and its parameters."""
    if is_postgres(conn):
        return "= ANY(%s)", (list(values),)
    return f"IN ({', '.join('?' * len(values))})", tuple(values)


@overload
def time_from_driver(value: None) -> None: ...
@overload
def time_from_driver(value: datetime | str) -> datetime: ...
def time_from_driver(value: datetime | str | None) -> datetime | None:
    """A UtcDateTime value as the driver returns it (text on SQLite) to aware UTC."""
    if value is None or isinstance(value, datetime):
        return ensure_utc(value) if value else None
    return ensure_utc(datetime.fromisoformat(value))


def values_table(conn: Connection, columns: dict[str, str], rows: Sequence[Sequence[Any]]
                 ) -> tuple[str, tuple[Any, ...]]:
    """A derived table of `rows` (columns: name to PostgreSQL type), to join with, insert or update
    from in one statement run on the driver, and its one parameter: the rows as one JSON text
    (values already in the driver's terms, e.g. times as `driver_time` gives them). JSON, not
    arrays, on PostgreSQL too: psycopg formats arrays element by element in Python, three times
    the work of one JSON text, and more for the server to parse."""
    if is_postgres(conn):
        picks = ", ".join(f"CAST(e->>{i} AS {kind}) AS {name}" for i, (name, kind) in enumerate(columns.items()))
        # LIMIT tells the planner how many rows (it guesses 100 for a set-returning function, and for
        # so many may scan a whole table where the few at hand want its index); a power of two, so
        # that one statement text, prepared once, serves many row counts
        limit = 1 << (len(rows) - 1).bit_length()
        return (f"(SELECT {picks} FROM json_array_elements(%s::json) AS e LIMIT {limit})",  # noqa: S608
                (_ROWS_ENCODER.encode(rows),))
    picks = ", ".join(f"json_extract(value, '$[{i}]') AS {name}" for i, name in enumerate(columns))
    return f"(SELECT {picks} FROM json_each(?))", (json.dumps(rows),)  # noqa: S608


def _driver_value_json(value: Any) -> str:
    """The text PostgreSQL parses back into the column's type, for the values JSON has no type for."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not a value a row is written with")


_ROWS_ENCODER = json.JSONEncoder(default=_driver_value_json, separators=(",", ":"), ensure_ascii=False)


def member_bounds(conn: Connection, bounds: Mapping[str, datetime]) -> tuple[str, tuple[Any, ...]]:
    """A derived table `(member_id, since)` with one row per member, to join with a per-member lower
    time bound in one statement (`values_table`)."""
    to_driver = driver_time(conn)
    return values_table(conn, {"member_id": "text", "since": "timestamptz"},
                        [(m, to_driver(t)) for m, t in bounds.items()])


def advisory_lock(conn: Connection, name: str) -> None:
    """Serialise writers of one named thing until the transaction ends.

    A PostgreSQL advisory lock; SQLite needs none, as every write transaction
    already holds the database's single write lock.
    """
    if is_postgres(conn):
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": name})


_writer_locks: dict[str, WriterLock] = {}


def _writer_lock(engine: Engine) -> AbstractContextManager[None]:
    """SQLite has one writer at a time anyway: queue writers (this process's threads, and other
    processes on the same file) on a lock of ours rather than in SQLite's busy handler, whose
    sleeps with back-off make a long latency tail (writer_lock.py)."""
    if engine.dialect.name != "sqlite":
        return nullcontext()
    lock = writer_lock(engine)
    checkpointer.writing(lock.file)
    return lock.held()


def writer_lock(engine: Engine) -> WriterLock:
    """The SQLite database's writer lock (one a process)."""
    key = str(engine.url)
    with _engines_lock:
        if key not in _writer_locks:
            _writer_locks[key] = WriterLock(engine.url.database)
        return _writer_locks[key]


@contextmanager
def unit_of_work(engine: Engine, *, keep: bool = True) -> Iterator[Connection]:
    """A write transaction: commits when the block succeeds, rolls back on any error.

    An error marked `keep_transaction` (a remembered idempotent failure) commits
    what was recorded before it is raised. `keep=False`: rolled back even when the
    block succeeds (work done to see what it would do, such as an event's preview).
    """
    ensure_migrated(engine)
    with _writer_lock(engine), engine.connect() as conn:
        transaction = conn.begin()
        try:
            yield conn
        except BaseException as e:
            if keep and getattr(e, "keep_transaction", False):
                transaction.commit()
            else:
                transaction.rollback()
                if _connection_spoiled(e):
                    conn.invalidate()
                    engine.dispose(close=False)  # its siblings may be read-only too: the next open afresh
            raise
        if keep:
            transaction.commit()
        else:
            transaction.rollback()


T = TypeVar("T")


def in_transaction(engine: Engine, work: Callable[[Connection], T], *, again_if: Callable[[BaseException], bool],
                   attempts: int = 3) -> T:
    """`work` in a `unit_of_work`, run afresh (at most `attempts` times in all) while it fails on an
    error that `again_if` says a new transaction would not meet (another one got there first)."""
    for attempt in range(1, attempts + 1):
        try:
            with unit_of_work(engine) as conn:
                return work(conn)
        except Exception as e:
            if attempt == attempts or not again_if(e):
                raise
    raise AssertionError("unreachable")


@contextmanager
def read_only(engine: Engine, *, single_statement: bool = False) -> Iterator[Connection]:
    """A read transaction (no write lock on SQLite); never commits anything.

    `single_statement`: the block runs one SELECT, which is consistent by itself,
    so SQLite can skip BEGIN and COMMIT.
    """
    ensure_migrated(engine)
    with engine.connect() as raw:
        conn = raw.execution_options(read_only=True, single_statement=single_statement)
        with conn.begin():
            yield conn


def read_one(engine: Engine, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """The first row of one SELECT (`{mark}` for each placeholder) on a pooled driver connection, with
    no transaction around it (a single SELECT is consistent by itself): for the hottest reads, such
    as a balance or an API key. Repeated once if the server dropped its connections (a restart)."""
    ensure_migrated(engine)
    postgres = engine.dialect.name == "postgresql"
    sql = sql.format(mark="%s" if postgres else "?")
    for attempt in (1, 2):
        raw = engine.raw_connection()
        try:
            if postgres:
                raw.driver_connection.autocommit = True  # type: ignore[union-attr]  # no BEGIN/ROLLBACK trips
            cursor = raw.cursor()
            cursor.execute(sql, params)
            row = cursor.fetchone()
            cursor.close()
            if postgres:
                raw.driver_connection.autocommit = False  # type: ignore[union-attr]
            else:
                raw.rollback()  # end the driver's implicit read transaction, if it opened one
            return tuple(row) if row is not None else None
        except engine.dialect.loaded_dbapi.OperationalError:
            # most likely the server dropped its connections: start a new pool and read again (safe)
            raw.invalidate()
            engine.dispose(close=False)
            if attempt == 2:
                raise
        finally:
            raw.close()
    raise AssertionError("unreachable")


# --- bulk writes on hot paths ----------------------------------------------------
# The ledger and event ingestion write many narrow rows; going below SQLAlchemy's
# per-row parameter processing (COPY on PostgreSQL, one executemany on SQLite)
# is what makes batch writes run near the database's own speed.


@functools.lru_cache(maxsize=4096)  # batches repeat few distinct times (a batch's "now", an event's time)
def _sqlite_time(value: datetime | None) -> str | None:
    # the text UtcDateTime stores on SQLite: naive UTC, always six fractional digits so text order is time order
    return None if value is None else ensure_utc(value).replace(tzinfo=None).isoformat(" ", "microseconds")


def _same(value: Any) -> Any:
    return value


def driver_time(conn: Connection) -> Callable[[datetime | None], Any]:
    """What turns an aware datetime into the driver's value for a UtcDateTime column."""
    return _same if is_postgres(conn) else _sqlite_time


def _json_text(value: Any) -> str | None:
    return None if value is None else dumps(value)


def _converters(conn: Connection, table: sa.Table, columns: list[str]) -> list[Any]:
    """Per column, what turns a Python value into what the driver takes (None: nothing to do)."""
    return _converters_for(is_postgres(conn), table, tuple(columns))


@functools.lru_cache(maxsize=256)
def _converters_for(postgres: bool, table: sa.Table, columns: tuple[str, ...]) -> list[Any]:
    out: list[Any] = []
    for name in columns:
        kind = table.c[name].type
        if isinstance(kind, sa.JSON) or isinstance(getattr(kind, "impl", None), sa.JSON):
            out.append(_json_text)
        elif isinstance(kind, UtcDateTime) and not postgres:
            out.append(_sqlite_time)
        elif isinstance(kind, sa.Numeric) and not postgres:
            out.append(lambda v: None if v is None else str(v))
        elif isinstance(kind, sa.Boolean) and not postgres:
            out.append(lambda v: None if v is None else int(v))
        else:
            out.append(None)
    return out


def _tuples(rows: list[dict[str, Any]], columns: list[str], converters: list[Any]) -> list[tuple[Any, ...]]:
    pick = operator.itemgetter(*columns)  # picks a row's values in C
    picked = map(pick, rows) if len(columns) > 1 else ((v,) for v in map(pick, rows))
    return _converted(picked, converters)


def _converted(rows: Iterable[Sequence[Any]], converters: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Each row as a tuple, each column through its converter (None: as it is)."""
    if all(f is None for f in converters):
        return [tuple(r) for r in rows]
    return list(map(_row_function(tuple(converters)), rows))


@functools.lru_cache(maxsize=512)
def _row_function(converters: tuple[Any, ...]) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """`lambda r: (f0(r[0]), r[1], ...)` for these converters, made once: a row costs one call, not a
    loop over its columns in Python (this runs for every row the hot paths write and read)."""
    values = [f"f{i}(r[{i}])" if f is not None else f"r[{i}]" for i, f in enumerate(converters)]
    scope = {f"f{i}": f for i, f in enumerate(converters) if f is not None}
    made: Callable[[Sequence[Any]], tuple[Any, ...]] = eval(  # noqa: S307 (the text is ours: names and indexes)
        f"lambda r: ({', '.join(values)},)", scope)
    return made


def driver_execute(conn: Connection, sql: str, params: Any = (), *, many: bool = False) -> list[Any]:
    """Run SQL on the DB-API cursor of `conn`'s connection, inside its transaction, skipping
    SQLAlchemy's per-statement bookkeeping (about 0.1 ms a statement here): for the hottest
    statements only, written with the driver's placeholders (`?` SQLite, `%s` psycopg)."""
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        if many:
            cursor.executemany(sql, params)
            return []
        cursor.execute(sql, params)
        return rows_of(cursor)
    finally:
        cursor.close()


_TUPLES_OK = 2  # libpq's PGRES_TUPLES_OK (psycopg.pq.ExecStatus.TUPLES_OK)


def _returns_rows(cursor: Any) -> bool:
    """Whether the statement just run returned rows. psycopg's `description` builds a column object
    for every column each time it is read (5 µs for a few columns; this runs for every statement the
    hot paths read with), so its raw result's status is asked instead."""
    result = getattr(cursor, "pgresult", cursor)
    if result is cursor:  # sqlite3
        return cursor.description is not None
    return result is not None and result.status == _TUPLES_OK


class Read(NamedTuple):
    """A read to run later with others (`read_together`): its SQL (driver placeholders), its
    parameters, and what to make of the driver's cursor once the statement has run."""

    sql: str
    params: Any
    answer: Callable[[Any], Any]

    def then(self, shape: Callable[[Any], Any]) -> Read:
        """The same read, its answer passed through `shape`."""
        answer = self.answer
        return self._replace(answer=lambda cursor: shape(answer(cursor)))

    def now(self, conn: Connection) -> Any:
        """The answer of this read run on its own."""
        return read_together(conn, [self])[0]


def rows_of(cursor: Any) -> list[Any]:
    """A cursor's rows as the driver gives them (none for a statement that returns none)."""
    return list(cursor.fetchall()) if _returns_rows(cursor) else []


def read_together(conn: Connection, reads: Sequence[Read]) -> list[Any]:
    """The answers of several reads, run in order inside `conn`'s transaction. On PostgreSQL they
    go in one pipeline: one round trip instead of one a statement, the most of a small
    transaction's reading time. Each statement still runs after the one before it has finished and
    sees what it did (a lock taken by one holds for the next)."""
    driver = conn.connection.driver_connection
    cursors = [driver.cursor() for _ in reads]  # type: ignore[union-attr]
    try:
        if is_postgres(conn) and len(reads) > 1 and not in_pipeline(conn):
            with driver.pipeline():  # type: ignore[union-attr]
                for cursor, (sql, params, _) in zip(cursors, reads, strict=True):
                    cursor.execute(sql, params)
            return [answer(cursor) for cursor, (_, _, answer) in zip(cursors, reads, strict=True)]
        answers = []
        for cursor, (sql, params, answer) in zip(cursors, reads, strict=True):
            cursor.execute(sql, params)
            answers.append(answer(cursor))
        return answers
    finally:
        for cursor in cursors:
            cursor.close()


def select_read(conn: Connection, table: sa.Table, columns: Sequence[str], where: str, params: Any = ()) -> Read:
    """`SELECT columns FROM table WHERE where` (driver placeholders in `where`), answered by its rows
    with each value turned into what a SQLAlchemy select gives (the column types' own result
    processors): for hot reads, past SQLAlchemy's per-statement work."""
    dialect, names = conn.dialect, tuple(columns)

    def answer(cursor: Any) -> list[tuple[Any, ...]]:
        codes = tuple(d[1] for d in cursor.description)
        return _converted(cursor.fetchall(), _result_processors(dialect, table, names, codes))

    return Read(f"SELECT {', '.join(columns)} FROM {table.name} WHERE {where}", params, answer)  # noqa: S608


@functools.lru_cache(maxsize=256)
def _result_processors(dialect: sa.Dialect, table: sa.Table, columns: tuple[str, ...],
                       codes: tuple[Any, ...]) -> list[Any]:
    return [table.c[c].type.dialect_impl(dialect).result_processor(dialect, code) for c, code in zip(
        columns, codes, strict=True)]


COPY_FROM = 64  # rows: below this a plain executemany beats COPY's extra round trips


def bulk_insert(conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Insert rows (dicts with the same keys) in one round trip: COPY on PostgreSQL, executemany on SQLite."""
    if rows:
        columns = list(rows[0])
        insert_rows(conn, table.name, columns, _tuples(rows, columns, _converters(conn, table, columns)))


def insert_rows(conn: Connection, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
    """`bulk_insert` of rows already in the driver's terms (tuples in `columns` order)."""
    if not rows:
        return
    if len(rows[0]) != len(columns):  # a row of the wrong width would not fail everywhere: refuse it here
        raise ValueError(f"{table}: rows of {len(rows[0])} values for {len(columns)} columns")
    names = ", ".join(columns)
    if is_postgres(conn) and len(rows) >= COPY_FROM and not in_pipeline(conn):
        driver = conn.connection.driver_connection
        assert driver is not None
        types = _binary_copy_types(table, tuple(columns))
        binary = " (FORMAT BINARY)" if types else ""
        with driver.cursor() as cursor, cursor.copy(f"COPY {table} ({names}) FROM STDIN{binary}") as copy:
            if types:
                copy.set_types(types)
            for row in rows:
                copy.write_row(row)
        return
    if is_postgres(conn) and len(rows) > 1:
        # one statement for all rows: psycopg's executemany would send (and we would format) one
        # statement per row, most of a small group's write time
        source, params = values_table(conn, _typed(table, columns), rows)
        driver_execute(conn, f"INSERT INTO {table} ({names}) SELECT * FROM {source} AS v", params)  # noqa: S608
        return
    mark = "%s" if is_postgres(conn) else "?"
    sql = f"INSERT INTO {table} ({names}) VALUES ({', '.join([mark] * len(columns))})"  # noqa: S608
    if len(rows) == 1:
        driver_execute(conn, sql, rows[0])
    else:
        driver_execute(conn, sql, rows, many=True)


def in_pipeline(conn: Connection) -> bool:
    """Inside `pipelined` on PostgreSQL."""
    return is_postgres(conn) and bool(conn.connection.driver_connection.pgconn.pipeline_status)  # type: ignore[union-attr]


@contextmanager
def pipelined(conn: Connection, *row_lists: Sequence[Any]) -> Iterator[None]:
    """A run of writes (`insert_rows`, `update_rows`, `driver_execute` of statements that return no
    rows) sent to PostgreSQL without waiting for each one's answer — psycopg's pipeline mode: one
    round trip instead of one a statement, most of a small transaction's time. Only when every list
    of rows is below COPY_FROM (COPY, better for more, cannot run in a pipeline). An error is raised
    at the end of the block (the transaction fails as it would have)."""
    if not is_postgres(conn) or in_pipeline(conn) or any(len(rows) >= COPY_FROM for rows in row_lists):
        yield
        return
    with conn.connection.driver_connection.pipeline():  # type: ignore[union-attr]
        yield


# PostgreSQL type names for our column types, without length or precision: a cast to varchar(n)
# would cut a value that the column itself refuses
_PG_TYPES = ((sa.SmallInteger, "int2"), (sa.BigInteger, "int8"), (sa.Integer, "int4"), (sa.String, "text"),
             (sa.Text, "text"), (sa.Boolean, "bool"), (UtcDateTime, "timestamptz"), (sa.Numeric, "numeric"),
             (sa.JSON, "jsonb"), (sa.Date, "date"))
_TEXT_ONLY = {"numeric", "jsonb", "date"}  # values we pass in text form (JSON text, Decimal), not for binary COPY


@functools.lru_cache(maxsize=256)
def _pg_types(table: str, columns: tuple[str, ...]) -> list[str]:
    names = []
    for column in columns:
        kind = metadata.tables[table].c[column].type
        kind = kind.variant_mapping.get("postgresql", kind) if hasattr(kind, "variant_mapping") else kind
        name = next((n for k, n in _PG_TYPES if isinstance(kind, k)), None)
        if name is None:
            raise TypeError(f"no PostgreSQL type name for {table}.{column} ({kind!r})")
        names.append(name)
    return names


def _typed(table: str, columns: Sequence[str]) -> dict[str, str]:
    """Column name to PostgreSQL type name, as `values_table` takes them."""
    return dict(zip(columns, _pg_types(table, tuple(columns)), strict=True))


def _binary_copy_types(table: str, columns: tuple[str, ...]) -> list[str] | None:
    """PostgreSQL type names for a binary COPY into these columns (None: some column is not
    simple enough, e.g. JSON, and the text format is used). Binary skips formatting every
    value as text on our side and parsing it on the server's: a third off a batch write."""
    try:
        names = _pg_types(table, columns)
    except TypeError:  # a type we have no name for: COPY's text format takes any
        return None
    return None if _TEXT_ONLY.intersection(names) else names


def bulk_update(conn: Connection, table: sa.Table, key: str, rows: list[dict[str, Any]], *,
                increment: bool = False) -> None:
    """UPDATE table SET each non-key column (or add to it, with `increment`) WHERE key matches, for many rows."""
    if rows:
        columns = [c for c in rows[0] if c != key]
        ordered = [*columns, key]
        update_rows(conn, table.name, key, columns, _tuples(rows, ordered, _converters(conn, table, ordered)),
                    increment=increment)


def update_rows(conn: Connection, table: str, key: str, columns: Sequence[str], rows: list[tuple[Any, ...]], *,
                increment: bool = False) -> None:
    """`bulk_update` of driver-ready tuples: the `columns` values, then the key."""
    if not rows:
        return
    if is_postgres(conn) and len(rows) > 1 and len({row[-1] for row in rows}) == len(rows):
        # one statement for all rows, as insert_rows (only with distinct keys: UPDATE ... FROM applies
        # one source row per target row, where one statement per row applies each in turn)
        source, params = values_table(conn, _typed(table, [*columns, key]), rows)
        sets = ", ".join(f"{c} = t.{c} + v.{c}" if increment else f"{c} = v.{c}" for c in columns)
        driver_execute(conn, f"UPDATE {table} AS t SET {sets} FROM {source} AS v WHERE t.{key} = v.{key}",  # noqa: S608
                       params)
        return
    mark = "%s" if is_postgres(conn) else "?"
    sets = ", ".join(f"{c} = {c} + {mark}" if increment else f"{c} = {mark}" for c in columns)
    sql = f"UPDATE {table} SET {sets} WHERE {key} = {mark}"  # noqa: S608
    if len(rows) == 1:
        driver_execute(conn, sql, rows[0])
    else:
        driver_execute(conn, sql, rows, many=True)


# --- migrations -------------------------------------------------------------

_migrated: set[str] = set()


def alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    cfg = alembic_config(sa.create_engine("sqlite://"))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def ensure_migrated(engine: Engine) -> None:
    """Refuse to work on a database that `pointsmith init` has not brought up to date."""
    key = str(engine.url)
    if key in _migrated:
        return
    path = (engine.url.database or "") if engine.dialect.name == "sqlite" else ""
    # a command that needs a database does not leave an empty file where a mistyped path pointed (a
    # folder that is not there is the driver's "unable to open" below)
    unmade = path not in ("", ":memory:") and not os.path.exists(path) \
        and os.path.isdir(os.path.dirname(os.path.abspath(path)))
    current = None if unmade else current_revision(engine)
    if current != head_revision():
        state = "is not initialised" if current is None else f"is at revision {current}"
        raise DatabaseNotReady(
            f"the database {engine.url.render_as_string(hide_password=True)} {state}; "
            "run `pointsmith init` to create or migrate it"
        )
    _migrated.add(key)


def migrate(engine: Engine) -> tuple[str | None, str]:
    """Create or upgrade the schema; returns (revision before, revision after)."""
    from alembic import command

    before = current_revision(engine)
    command.upgrade(alembic_config(engine), "head")
    _migrated.discard(str(engine.url))
    return before, head_revision()
