"""Engine behaviour both databases need: SQLite pragmas and serialized write transactions."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TypeVar

from flask import Flask
from sqlalchemy import bindparam, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, scoped_session

from midas.extensions import db

T = TypeVar("T")

_registered = False


def register_engine_events(app: Flask) -> None:
    """Install the listeners once per process; they only act on SQLite connections."""
    global _registered
    if _registered:
        return
    event.listen(Engine, "connect", _sqlite_connect)
    event.listen(Engine, "begin", _sqlite_begin)
    _registered = True


def _sqlite_connect(dbapi_connection, _record) -> None:
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    # Let SQLAlchemy issue BEGIN itself (pysqlite's own handling defers it unpredictably).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.execute("PRAGMA busy_timeout = 30000")
    cursor.close()


def _sqlite_begin(connection) -> None:
    # Every SQLite transaction takes the write lock up front. A deferred one that reads and then writes
    # fails at once with "database is locked" whenever another writer committed in between (WAL snapshot
    # rules; the busy timeout cannot help), which a web server with a worker thread hits constantly.
    # Up front, writers simply queue on the busy timeout. PostgreSQL is unaffected.
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def begin_write(session: Session | scoped_session) -> None:
    """Start a fresh transaction for a check-then-write unit of work.

    On SQLite every transaction holds the write lock from its start (see `_sqlite_begin`), so the
    availability check and the insert are one serialized step; PostgreSQL relies on row locks and
    its exclusion constraint instead.
    """
    if isinstance(session, scoped_session):
        session = session()
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("begin_write() must come before any change in the unit of work")
    if session.in_transaction():
        session.commit()  # only reads so far (e.g. loading the current user): end them
    session.connection()


def in_write(change: Callable[[], T]) -> T:
    """Run `change` as one serialized write transaction and commit it (rolled back on any error)."""
    begin_write(db.session)
    try:
        result = change()
        db.session.commit()
        return result
    except BaseException:
        db.session.rollback()
        raise


def insert_unless_present(model: type, unique: tuple[str, ...], values: dict) -> int | None:
    """INSERT … ON CONFLICT (unique) DO NOTHING RETURNING id: the new row's id, or None if one was there.

    Not committed. Unlike flush-and-catch, a repeat raises no constraint error, so the transaction stays
    usable (PostgreSQL would abort it) and the database logs no error for an expected duplicate. Written
    as text (both SQLite and PostgreSQL speak it) because the dialects' own ON CONFLICT constructs are
    not cached by SQLAlchemy and would be compiled again on every call; the names come from the model.
    """
    table = model.__table__
    names = list(values)
    stmt = text(f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join(':' + n for n in names)}) "
                f"ON CONFLICT ({', '.join(unique)}) DO NOTHING RETURNING id")
    stmt = stmt.bindparams(*(bindparam(n, type_=table.c[n].type) for n in names))
    return db.session.scalar(stmt, values)
