"""The registry: users, hashed tokens, models and runners, in SQLite.

Versioned migrations run on open (``PRAGMA user_version``). Calls are short and rare (a runner
registering, a token seen for the first time), so they run on the event loop's thread; the hot
path (token checks, model lookups) is served from memory by :mod:`.auth` and :mod:`.dispatch`.
The class is the seam for a PostgreSQL registry later: nothing else touches SQL.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import string
import time
from dataclasses import dataclass
from pathlib import Path

from edge_runner.views import ModelSpecView, RunnerInfoView

__all__ = [
    "ADMIN_SCOPES",
    "SCOPES",
    "TOKEN_ID_LEN",
    "ModelRecord",
    "Registry",
    "RunnerRecord",
    "TokenInfo",
    "TokenRecord",
    "hash_token",
    "new_token",
]

#: length of a token's public id (a prefix of its SHA-256)
TOKEN_ID_LEN = 12

#: what a token may do: call models, list things, manage tokens, connect a runner, and
#: (bootstrap admin only) create users
SCOPES = ("predict", "read", "manage", "runner")
ADMIN_SCOPES = (*SCOPES, "admin")
ALL_SCOPES = ADMIN_SCOPES

_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE users (
        id TEXT PRIMARY KEY,
        created_at REAL NOT NULL
    );
    CREATE TABLE tokens (
        hash TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users(id),
        name TEXT NOT NULL,
        scopes TEXT NOT NULL,
        created_at REAL NOT NULL,
        revoked INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE models (
        user_id TEXT NOT NULL REFERENCES users(id),
        model_id TEXT NOT NULL,
        spec TEXT NOT NULL,
        signature_hash TEXT NOT NULL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (user_id, model_id)
    );
    CREATE TABLE runners (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users(id),
        info TEXT NOT NULL,
        status TEXT NOT NULL,
        last_seen REAL NOT NULL
    );
    """,
    # 2: tokens get a kind (personal or runner) and a revocation time; the walking-skeleton
    # "admin" scope set is widened to the four scopes plus "admin".
    """
    ALTER TABLE tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'pat';
    ALTER TABLE tokens ADD COLUMN revoked_at REAL;
    UPDATE tokens SET scopes = 'predict,read,manage,runner,admin' WHERE scopes LIKE '%admin%';
    """,
    # 3: tokens may expire.
    """
    ALTER TABLE tokens ADD COLUMN expires_at REAL;
    """,
)


_ALPHABET = string.ascii_letters + string.digits


def new_token(prefix: str = "er_pat_") -> str:
    """Return a fresh token: a recognisable prefix and 256 random bits in 43 base-62 characters.

    Letters and digits only, so the token is one "word" for secret scanners
    (``er_pat_[A-Za-z0-9]{43}``) and its masked form (``er_pat_ab12****``) is unambiguous.
    """
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(43))


def hash_token(token: str) -> str:
    """SHA-256 of a token: tokens are random, so no slow password hash is needed."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenInfo:
    """Who a valid token belongs to and what it may do.

    Attributes:
        token_id: the public id (a prefix of the hash), for listing and revoking.
    """

    user_id: str
    scopes: frozenset[str]
    name: str
    token_id: str = ""
    kind: str = "pat"
    expires_at: float | None = None


@dataclass(frozen=True)
class TokenRecord:
    """A token as listed (never the secret itself)."""

    token_id: str
    user_id: str
    name: str
    scopes: tuple[str, ...]
    kind: str
    created_at: float
    revoked: bool
    expires_at: float | None = None


@dataclass(frozen=True)
class ModelRecord:
    """A model as registered by its runners: ``spec`` is the JSON-able ModelSpec."""

    user_id: str
    model_id: str
    spec: ModelSpecView
    signature_hash: str
    updated_at: float


@dataclass(frozen=True)
class RunnerRecord:
    """A runner as last seen: ``info`` holds hostname, version, pool size, models, GPUs."""

    runner_id: str
    user_id: str
    info: RunnerInfoView
    status: str
    last_seen: float


class Registry:
    """SQLite-backed registry. Use as a context manager or call :meth:`close`."""

    def __init__(self, path: Path | str) -> None:
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def _migrate(self) -> None:
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        for number, script in enumerate(_MIGRATIONS[version:], start=version + 1):
            with self._db:
                self._db.execute("BEGIN")
                for statement in script.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {number}")

    @property
    def schema_version(self) -> int:
        """The applied migration count."""
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    # -- users and tokens -------------------------------------------------------------------

    def has_users(self) -> bool:
        """Whether any user exists (false only before bootstrap)."""
        return self._db.execute("SELECT 1 FROM users LIMIT 1").fetchone() is not None

    def create_user(self, user_id: str) -> None:
        """Create a user (no-op if it exists)."""
        self._db.execute(
            "INSERT OR IGNORE INTO users (id, created_at) VALUES (?, ?)", (user_id, time.time())
        )

    def create_token(
        self,
        user_id: str,
        name: str,
        scopes: tuple[str, ...] = SCOPES,
        kind: str = "pat",
        expires_at: float | None = None,
    ) -> str:
        """Create a token for ``user_id``; the plaintext is returned once and never stored."""
        token = new_token("er_rt_" if kind == "runner" else "er_pat_")
        self._db.execute(
            "INSERT INTO tokens (hash, user_id, name, scopes, created_at, kind, expires_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (hash_token(token), user_id, name, ",".join(scopes), time.time(), kind, expires_at),
        )
        return token

    @staticmethod
    def token_id(token: str) -> str:
        """A token's public id (a prefix of its hash), expired or not."""
        return hash_token(token)[:TOKEN_ID_LEN]

    def lookup_token(self, token_hash: str) -> TokenInfo | None:
        """Find a live token by its hash."""
        row = self._db.execute(
            "SELECT user_id, scopes, name, kind, expires_at FROM tokens "
            "WHERE hash = ? AND revoked = 0",
            (token_hash,),
        ).fetchone()
        if row is None:
            return None
        return TokenInfo(
            row[0], frozenset(row[1].split(",")), row[2], token_hash[:TOKEN_ID_LEN], row[3], row[4]
        )

    def tokens(self, user_id: str) -> list[TokenRecord]:
        """A user's tokens, newest first."""
        rows = self._db.execute(
            "SELECT hash, user_id, name, scopes, kind, created_at, revoked, expires_at FROM tokens "
            "WHERE user_id = ? ORDER BY created_at DESC",
            (user_id,),
        ).fetchall()
        return [
            TokenRecord(
                r[0][:TOKEN_ID_LEN],
                r[1],
                r[2],
                tuple(r[3].split(",")),
                r[4],
                r[5],
                bool(r[6]),
                r[7],
            )
            for r in rows
        ]

    def revoke_token(self, user_id: str, token_id: str) -> str | None:
        """Revoke a user's token by public id; returns its hash, or None if there is none."""
        if len(token_id) != TOKEN_ID_LEN or not all(c in "0123456789abcdef" for c in token_id):
            return None
        row = self._db.execute(
            "SELECT hash FROM tokens WHERE user_id = ? AND hash LIKE ? AND revoked = 0",
            (user_id, token_id + "%"),
        ).fetchone()
        if row is None:
            return None
        self._db.execute(
            "UPDATE tokens SET revoked = 1, revoked_at = ? WHERE hash = ?", (time.time(), row[0])
        )
        return str(row[0])

    def user_exists(self, user_id: str) -> bool:
        """Whether a user exists."""
        return (
            self._db.execute("SELECT 1 FROM users WHERE id = ?", (user_id,)).fetchone() is not None
        )

    # -- models -----------------------------------------------------------------------------

    def upsert_model(self, user_id: str, spec: ModelSpecView, signature_hash: str) -> None:
        """Record (or refresh) a model's spec as registered by a runner."""
        self._db.execute(
            "INSERT INTO models (user_id, model_id, spec, signature_hash, updated_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, model_id) DO UPDATE SET "
            "spec = excluded.spec, signature_hash = excluded.signature_hash, "
            "updated_at = excluded.updated_at",
            (user_id, spec["id"], json.dumps(spec), signature_hash, time.time()),
        )

    def delete_model(self, user_id: str, model_id: str) -> None:
        """Forget a model (one whose only runner could not prepare it)."""
        self._db.execute(
            "DELETE FROM models WHERE user_id = ? AND model_id = ?", (user_id, model_id)
        )

    def models(self) -> list[ModelRecord]:
        """Every registered model of every user."""
        rows = self._db.execute(
            "SELECT user_id, model_id, spec, signature_hash, updated_at FROM models"
        ).fetchall()
        return [ModelRecord(r[0], r[1], json.loads(r[2]), r[3], r[4]) for r in rows]

    # -- runners ----------------------------------------------------------------------------

    def runner_owner(self, runner_id: str) -> str | None:
        """The user a runner id belongs to, or None when no runner record has it.

        The first user whose runner registered an id owns it for as long as the record exists,
        across disconnects and restarts: nobody else may connect, adopt, drain or read logs
        under that id.
        """
        row = self._db.execute("SELECT user_id FROM runners WHERE id = ?", (runner_id,)).fetchone()
        return None if row is None else str(row[0])

    def upsert_runner(self, record: RunnerRecord) -> None:
        """Record a runner's latest info and status; an existing record keeps its owner.

        The caller checks :meth:`runner_owner` first; the ``WHERE`` makes a record of another
        user unchangeable even if it did not.
        """
        self._db.execute(
            "INSERT INTO runners (id, user_id, info, status, last_seen) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET info = excluded.info, "
            "status = excluded.status, last_seen = excluded.last_seen "
            "WHERE runners.user_id = excluded.user_id",
            (
                record.runner_id,
                record.user_id,
                json.dumps(record.info),
                record.status,
                record.last_seen,
            ),
        )

    def set_runner_status(self, runner_id: str, status: str, last_seen: float) -> None:
        """Update a runner's status and last-seen time."""
        self._db.execute(
            "UPDATE runners SET status = ?, last_seen = ? WHERE id = ?",
            (status, last_seen, runner_id),
        )

    def mark_all_disconnected(self, now: float) -> None:
        """At start-up no tunnel is open yet, whatever the last run recorded."""
        self._db.execute(
            "UPDATE runners SET status = 'disconnected', last_seen = MIN(last_seen, ?) "
            "WHERE status != 'disconnected'",
            (now,),
        )

    def runners(self) -> list[RunnerRecord]:
        """Every runner ever registered, most recently seen first."""
        rows = self._db.execute(
            "SELECT id, user_id, info, status, last_seen FROM runners ORDER BY last_seen DESC"
        ).fetchall()
        return [RunnerRecord(r[0], r[1], json.loads(r[2]), r[3], r[4]) for r in rows]
