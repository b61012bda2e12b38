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

from .compose_chunks import ComposeChunk
from .db import database, init_database
from .events import Event
from .fal_slots import FalSlot
from .models import MODELS
from .overview_store import OverviewHour, OverviewReason
from .pair_halves import PairHalf
from .speech_jobs import SpeechJob
from .throttle_store import AuthFailure

__all__ = ["run_migrations", "console_index_ddl", "CONSOLE_INDEXES", "SUPPORT_MODELS", "ALL_TABLES"]

log = logging.getLogger(__name__)


# An arbitrary constant key for PostgreSQL's advisory lock ("callreel" in ASCII).
MIGRATION_LOCK = 0x63616C6C7265656C

#: callreel's own tables beside the host's ``calls`` and the segments (MODELS).
SUPPORT_MODELS = (AuthFailure, SpeechJob, Event, PairHalf, OverviewHour, OverviewReason, ComposeChunk, FalSlot)
#: Every table callreel makes, for whoever must start from an empty schema (the tests).
ALL_TABLES = tuple(model._meta.table_name for model in (*MODELS, *SUPPORT_MODELS))


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
            for model in (*MODELS, *SUPPORT_MODELS):
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
            for ddl in console_index_ddl(db):
                db.execute_sql(ddl)
    for change in changes:
        log.info("migration: %s", change)
    return changes


def _index_ddl(model) -> list[str]:
    """CREATE … INDEX IF NOT EXISTS for every declared index, unique ones included."""
    ctx = model._schema._create_indexes(safe=True)
    return [model._meta.database.get_sql_context().sql(c).query()[0] for c in ctx]


# -- the console's indexes on ``calls`` (#28) ----------------------------------------
# The host's table grows without end; each index serves one query of the console
# (docs/console.md, "Scale"; bench/scale.py prints the plans that use them):
# - calls_created_idx: the call list, newest first (keyset pages on (created_at, id)), and
#   every overview aggregate over a window of created_at; it carries video_status, so the
#   calls-per-hour count over a week reads the index alone (an index-only scan), not the rows.
# - calls_status_created_idx, calls_stage_created_idx: the list filtered by status or stage.
# - calls_ended_idx: spend per day and the failure-rate alert (calls ended in a window), with
#   the columns they add up, so a week of spend is an index-only scan too.
# - calls_in_flight_idx: partial, only calls not yet ended (a few among millions): the
#   backlog per stage and the "stuck past STAGE_DEADLINE" banner.
# - calls_id_prefix_idx, calls_recording_prefix_idx: search by the start of a SID (LIKE 'CA12%')
#   whatever the database's collation (PostgreSQL only uses a plain index for LIKE under "C").
# PostgreSQL spells the list's order (DESC NULLS LAST, as the query says) in the index;
# SQLite puts NULLs first in ascending order, so DESC already puts them last there.
_IN_FLIGHT = "video_status IS NULL OR video_status NOT IN ('completed', 'partial', 'failed')"
CONSOLE_INDEXES = {
    "calls_created_idx": ("(created_at DESC NULLS LAST, id DESC) INCLUDE (video_status)", "(created_at DESC, id DESC)", ""),
    "calls_status_created_idx": (
        "(video_status, created_at DESC NULLS LAST, id DESC)", "(video_status, created_at DESC, id DESC)", "",
    ),
    "calls_stage_created_idx": ("(stage, created_at DESC NULLS LAST, id DESC)", "(stage, created_at DESC, id DESC)", ""),
    "calls_ended_idx": (
        "(video_processing_completed_at)"
        " INCLUDE (video_status, fal_cost_usd, caller_state, caller_duration, callee_state, callee_duration)",
        "(video_processing_completed_at)", "",
    ),
    "calls_in_flight_idx": ("(stage)", "(stage)", f" WHERE {_IN_FLIGHT}"),
    "calls_id_prefix_idx": ("(id varchar_pattern_ops)", "", ""),
    "calls_recording_prefix_idx": ("(recording_sid varchar_pattern_ops)", "", ""),
}


def console_index_ddl(db: Database) -> list[str]:
    """CREATE INDEX IF NOT EXISTS for the console's indexes, in this database's dialect."""
    statements = []
    for name, (postgres, sqlite, where) in CONSOLE_INDEXES.items():
        columns = postgres if _is_postgres(db) else sqlite
        if columns:
            statements.append(f"CREATE INDEX IF NOT EXISTS {name} ON calls {columns}{where}")
    return statements
