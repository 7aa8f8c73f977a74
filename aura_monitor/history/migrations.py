"""Schema migrations: ordered steps, each applied once and recorded in `schema_version`.

The SQL is kept portable (no AUTOINCREMENT, no SQLite-only types; text ids and DOUBLE PRECISION epoch
seconds) so the same steps run on PostgreSQL. Append a step; never edit one that has shipped.
"""

from __future__ import annotations

STEPS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE runs (
            job_id TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            node TEXT NOT NULL,
            created_at DOUBLE PRECISION,
            started_at DOUBLE PRECISION,
            ended_at DOUBLE PRECISION,
            status TEXT NOT NULL,
            output_verified INTEGER,
            updated_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (job_id, attempt, node)
        )""",
        """CREATE TABLE stages (
            job_id TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            node TEXT NOT NULL,
            stage TEXT NOT NULL,
            started_at DOUBLE PRECISION NOT NULL,
            ended_at DOUBLE PRECISION NOT NULL,
            duration_s DOUBLE PRECISION NOT NULL,
            progress_updates INTEGER NOT NULL,
            max_gap_s DOUBLE PRECISION,
            typical_gap_s DOUBLE PRECISION,
            expected_media_s DOUBLE PRECISION,
            PRIMARY KEY (job_id, attempt, node, stage, started_at)
        )""",
        """CREATE TABLE incidents (
            id TEXT PRIMARY KEY,
            job_id TEXT NOT NULL,
            node TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            stage TEXT NOT NULL,
            started_at DOUBLE PRECISION NOT NULL,
            ended_at DOUBLE PRECISION,
            verdict TEXT NOT NULL,
            timeline TEXT NOT NULL,
            evidence TEXT NOT NULL,
            resolution TEXT NOT NULL
        )""",
        "CREATE INDEX incidents_started ON incidents (started_at)",
        "CREATE INDEX incidents_open ON incidents (job_id, node, resolution)",
        "CREATE INDEX runs_updated ON runs (updated_at)",
        "CREATE INDEX stages_ended ON stages (ended_at)",
    ),
)

LATEST = len(STEPS)
