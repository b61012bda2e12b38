"""Idempotent schema migrations, safe on an empty database and on a host's ``calls`` table.

A table that does not exist is created whole. A table that exists gets only the
columns and indexes it lacks (the ``ADD COLUMN IF NOT EXISTS`` rule, done by
introspection so SQLite, which lacks that syntax, behaves the same). Running it
twice changes nothing the second time.
"""

from __future__ import annotations

import logging

from peewee import Database
from playhouse.migrate import PostgresqlMigrator, SchemaMigrator, SqliteMigrator
from playhouse.migrate import migrate as apply

from .db import database, init_database
from .fal_slots import FalSlot
from .models import MODELS
from .speech_jobs import SpeechJob
from .throttle_store import AuthFailure

__all__ = ["run_migrations"]

log = logging.getLogger(__name__)


# An arbitrary constant key for PostgreSQL's advisory lock ("callreel" in ASCII).
MIGRATION_LOCK = 0x63616C6C7265656C


def _is_postgres(db: Database) -> bool:
    return db.__class__.__name__.startswith("Postgres")


def _migrator(db: Database) -> SchemaMigrator:
    return PostgresqlMigrator(db) if _is_postgres(db) else SqliteMigrator(db)


def run_migrations(db: Database | None = None) -> list[str]:
    """Bring the schema up to date; return what was changed (empty when nothing was)."""
    db = db or database.obj or init_database()
    changes: list[str] = []
    with db.connection_context():
        with db.atomic():
            if _is_postgres(db):
                # A migration may wait and take long (the lock below, an index on a big table): the
                # connection's DB_LOCK_TIMEOUT / DB_STATEMENT_TIMEOUT are for requests and messages.
                db.execute_sql("SET LOCAL lock_timeout = 0")
                db.execute_sql("SET LOCAL statement_timeout = 0")
                # Two services deploying at once must not both add a column:
                # the second waits here, then finds nothing left to do.
                db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            for model in (*MODELS, AuthFailure, SpeechJob, FalSlot):
                table = model._meta.table_name
                if not db.table_exists(table):
                    db.create_tables([model], safe=True)
                    changes.append(f"created table {table}")
                    continue
                existing = {c.name for c in db.get_columns(table)}
                operations = []
                for field in model._meta.sorted_fields:
                    if field.column_name in existing:
                        continue
                    operations.append(_migrator(db).add_column(table, field.column_name, field))
                    changes.append(f"added column {table}.{field.column_name}")
                if operations:
                    apply(*operations)
                for ddl in _index_ddl(model):
                    db.execute_sql(ddl)
    for change in changes:
        log.info("migration: %s", change)
    return changes


def _index_ddl(model) -> list[str]:
    """CREATE … INDEX IF NOT EXISTS for every declared index, unique ones included."""
    ctx = model._schema._create_indexes(safe=True)
    return [model._meta.database.get_sql_context().sql(c).query()[0] for c in ctx]
