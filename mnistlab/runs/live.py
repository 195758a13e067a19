"""The live state of training: queue, attempts, progress and cancel requests in one SQLite file.

Finished runs are folders (see :mod:`mnistlab.runs.store`); what is *happening* lives here, in
``<store root>/live.sqlite3``, so that every process (the page, the workers, a heartbeat thread)
sees one consistent picture and every change is one transaction.

Tables::

    meta(key, value)      schema_version: the layout of this file (SCHEMA_VERSION)
                          data_version:   a counter bumped by every write transaction that
                                          changes what a page shows (pages poll it cheaply)
    attempts              one row per attempt to train a run: the run id, its configuration
                          and canonical JSON, its state, the worker (name, pid, host) that holds
                          it, timestamps (queued, started, updated, heartbeat), the history so
                          far (JSON, one record per epoch), a message for people, the cancel
                          flag, how often its worker died (tries), its sweep, and whether a
                          person dismissed it from the list of recent problems

A run may have many attempts over time (cancelled, relaunched, ...), but at most one *active*
attempt (``queued`` or ``training``): a unique partial index guarantees it, whatever the code
above does. A cancel request names an attempt, never a run, so an old request cannot stop a
later relaunch.

States of an attempt and their moves (:data:`TRANSITIONS`, checked in :func:`check_transition`
and nowhere else)::

    queued      -> training (a worker claimed it) | cancelled (cancelled before it started)
    training    -> finished | cancelled | failed | diverged
                 | interrupted (its worker stopped without finishing, e.g. on shutdown)
                 | queued (requeued: its worker process died)
    interrupted -> queued (requeued) | failed (stopped or died too often) | cancelled
    finished, cancelled, failed, diverged: terminal

:meth:`LiveState.claim` is the only way into ``training``, and it counts the attempts in
training in the same transaction: a cap on concurrent trainings (``MNISTLAB_MAX_TRAININGS``)
holds however many processes race, and launches over the cap wait in the queue. A worker
holding an attempt beats every second (:class:`Heartbeat`); :meth:`LiveState.reap` (run by
every claim) requeues the attempts whose heartbeat went stale *and* whose process is gone,
until they have died ``max_tries`` times, then fails them.

The database runs in WAL mode: readers never block and are never blocked; writers wait for
each other up to a busy timeout. Connections are per thread and per process. Opened
read-only, the file is never created: a missing database reads as empty and every write
raises :class:`~mnistlab.errors.ReadOnlyError`. Faults of the disk (full, read-only, a file
where a folder should be, a file that is not a database) become
:class:`~mnistlab.errors.StoreError` naming the database and what to do.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from mnistlab.errors import MnistlabError, ReadOnlyError, StoreError, store_error

#: The layout of the database file; a file from a newer mnistlab is refused, not guessed at.
SCHEMA_VERSION = 1
#: The database file's name under a store root.
FILENAME = "live.sqlite3"
#: Seconds a writer waits for another one before giving up with a StoreError.
BUSY_TIMEOUT = 10.0
#: An attempt held on another host is judged by its heartbeat alone, this many times more patiently.
REMOTE_STALE_FACTOR = 6

ACTIVE = ("queued", "training")
#: Which state an attempt may move to from each state; terminal states allow none.
TRANSITIONS: dict[str, frozenset[str]] = {
    "queued": frozenset({"training", "cancelled"}),
    "training": frozenset({"finished", "cancelled", "failed", "diverged", "interrupted", "queued"}),
    "interrupted": frozenset({"queued", "failed", "cancelled"}),
    "finished": frozenset(),
    "cancelled": frozenset(),
    "failed": frozenset(),
    "diverged": frozenset(),
}
STATES = tuple(TRANSITIONS)
TERMINAL = tuple(state for state, moves in TRANSITIONS.items() if not moves)
#: Ended without a result: what :meth:`LiveState.recent` lists until a person dismisses it.
PROBLEMS = ("cancelled", "failed", "diverged")

T = TypeVar("T")


class TransitionError(MnistlabError, ValueError):
    """An attempt asked to move to a state its current state does not allow."""


class NoSuchAttempt(MnistlabError, LookupError):
    """An attempt id that is not in the live state (never was, or cleaned up)."""


def check_transition(attempt_id: int, current: str, new: str) -> None:
    """Raise :class:`TransitionError` unless :data:`TRANSITIONS` lets ``current`` become ``new``."""
    if new not in TRANSITIONS:
        raise TransitionError(f"state must be one of {', '.join(STATES)}, got {new!r}")
    if new not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or f"none, {current} is terminal"
        raise TransitionError(f"attempt {attempt_id} is {current} and cannot become {new} "
                              f"(allowed from {current}: {allowed})")


@dataclasses.dataclass(frozen=True)
class Attempt:
    """One attempt to train a run, as the live state holds it."""

    id: int
    run_id: str
    config: dict[str, Any]
    canonical: str  # the canonical JSON text of the run (what its id hashes)
    state: str
    worker: str | None
    pid: int | None
    host: str | None
    queued_at: float
    started_at: float | None
    updated_at: float
    heartbeat_at: float | None
    epochs_total: int
    history: list[dict[str, Any]]
    message: str
    cancel_requested: bool
    tries: int  # how often its worker died or stopped before it finished
    sweep: str | None
    dismissed: bool = False

    @property
    def is_active(self) -> bool:
        """Queued or training: a worker will still produce this run."""
        return self.state in ACTIVE

    @property
    def epochs_done(self) -> int:
        return len(self.history)


def _in(states: Iterable[str]) -> str:
    """An SQL list of state names: ``('queued', 'training')`` (names from :data:`STATES` only)."""
    return "(" + ", ".join(f"'{state}'" for state in states) + ")"


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    f"""CREATE TABLE IF NOT EXISTS attempts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL,
        config TEXT NOT NULL,
        canonical TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN {_in(STATES)}),
        worker TEXT,
        pid INTEGER,
        host TEXT,
        queued_at REAL NOT NULL,
        started_at REAL,
        updated_at REAL NOT NULL,
        heartbeat_at REAL,
        epochs_total INTEGER NOT NULL,
        history TEXT NOT NULL DEFAULT '[]',
        message TEXT NOT NULL DEFAULT '',
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        tries INTEGER NOT NULL DEFAULT 0,
        sweep TEXT,
        dismissed INTEGER NOT NULL DEFAULT 0
    )""",
    f"CREATE UNIQUE INDEX IF NOT EXISTS one_active_attempt_per_run ON attempts (run_id) WHERE state IN {_in(ACTIVE)}",
    "CREATE INDEX IF NOT EXISTS attempts_by_state ON attempts (state, id)",
    "CREATE INDEX IF NOT EXISTS attempts_by_run ON attempts (run_id, id)",
    "INSERT OR IGNORE INTO meta (key, value) VALUES ('data_version', 0)",
)
_COLUMNS = ("id, run_id, config, canonical, state, worker, pid, host, queued_at, started_at, updated_at, "
            "heartbeat_at, epochs_total, history, message, cancel_requested, tries, sweep, dismissed")


def _json(value: Any) -> str:
    """JSON text of plain data; NumPy scalars (as Keras histories hold) become Python numbers."""
    def plain(item: Any) -> Any:
        if hasattr(item, "item"):
            return item.item()
        raise TypeError(f"{type(item).__name__} is not JSON serialisable")

    return json.dumps(value, sort_keys=True, default=plain)


def _attempt(row: sqlite3.Row) -> Attempt:
    return Attempt(
        id=row["id"],
        run_id=row["run_id"],
        config=json.loads(row["config"]),
        canonical=row["canonical"],
        state=row["state"],
        worker=row["worker"],
        pid=row["pid"],
        host=row["host"],
        queued_at=row["queued_at"],
        started_at=row["started_at"],
        updated_at=row["updated_at"],
        heartbeat_at=row["heartbeat_at"],
        epochs_total=row["epochs_total"],
        history=json.loads(row["history"]),
        message=row["message"],
        cancel_requested=bool(row["cancel_requested"]),
        tries=row["tries"],
        sweep=row["sweep"],
        dismissed=bool(row["dismissed"]),
    )


def _rows(conn: sqlite3.Connection, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
    """All rows of a query (always read to the end, so no read transaction stays open)."""
    return conn.execute(sql, params).fetchall()


def _one(conn: sqlite3.Connection, sql: str, params: tuple = ()) -> sqlite3.Row | None:
    rows = _rows(conn, sql, params)
    return rows[0] if rows else None


def _process_alive(pid: int | None) -> bool:
    """Whether process ``pid`` of this host still runs (a zombie, killed but not waited for, does not)."""
    if not pid or pid <= 0:
        return False
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def _launch_item(item: Any) -> tuple[str, str, str, int]:
    """A launch item checked, its configuration as JSON text."""
    try:
        run_id, config, canonical, epochs_total = item
    except (TypeError, ValueError):
        raise ValueError(f"each launch item must be (run_id, config, canonical_json, epochs_total), "
                         f"got {str(item)[:80]!r}") from None
    if not isinstance(run_id, str) or not run_id:
        raise ValueError(f"run_id must be a non-empty string, got {run_id!r}")
    if not isinstance(config, dict):
        raise ValueError(f"config of run {run_id} must be a dict, got {type(config).__name__}")
    if not isinstance(canonical, str) or not canonical:
        raise ValueError(f"canonical_json of run {run_id} must be a non-empty string, got {canonical!r}")
    if isinstance(epochs_total, bool) or not isinstance(epochs_total, int) or epochs_total < 1:
        raise ValueError(f"epochs_total of run {run_id} must be an integer >= 1, got {epochs_total!r}")
    return run_id, _json(config), canonical, epochs_total


#: Advice for SQLite's primary result codes, in the words of :func:`mnistlab.errors.store_error`.
_SQLITE_ADVICE = {
    "SQLITE_READONLY": "the database or its folder is read-only: make them writable for this user or point "
                       "MNISTLAB_STORE at a writable folder",
    "SQLITE_CANTOPEN": "the database cannot be opened: check that its folder exists and is writable for this "
                       "user, or point MNISTLAB_STORE at another folder",
    "SQLITE_PERM": "permission denied: make the database and its folder writable for this user",
    "SQLITE_IOERR": "the disk reported an input/output error: check the disk and its free space, then try again",
    "SQLITE_CORRUPT": "the file is not a valid SQLite database: move it aside (it holds only the queue and "
                      "progress; finished runs are in their folders) and try again",
    "SQLITE_NOTADB": "the file is not an SQLite database: move it aside (it holds only the queue and progress; "
                     "finished runs are in their folders) and try again",
}
_SQLITE_MESSAGES = {
    "readonly": "SQLITE_READONLY",
    "unable to open": "SQLITE_CANTOPEN",
    "disk is full": "SQLITE_FULL",
    "locked": "SQLITE_BUSY",
    "disk i/o": "SQLITE_IOERR",
    "malformed": "SQLITE_CORRUPT",
    "not a database": "SQLITE_NOTADB",
}


class LiveState:
    """The live state of one store: a handle on ``live.sqlite3`` (see the module's docstring).

    Creating one touches nothing; the file (and its folder) is created on the first use of a
    writable one. Any thread of any process may use it; each gets its own connection.
    ``timeout``: seconds a writer waits for another before raising :class:`StoreError`.
    """

    def __init__(self, path: str | os.PathLike, *, read_only: bool = False, timeout: float = BUSY_TIMEOUT):
        self.path = Path(path).expanduser().absolute()
        self.read_only = bool(read_only)
        self.timeout = float(timeout)
        self._local = threading.local()
        self._inherited: list[sqlite3.Connection] = []  # opened before a fork: never used nor closed here
        self._poll_lock = threading.Lock()
        self._poll: tuple[int, int, sqlite3.Connection] | None = None  # (pid, inode of the file, connection)

    @classmethod
    def for_store(cls, root: str | os.PathLike, *, read_only: bool = False) -> LiveState:
        """The live state of the store at ``root``: ``<root>/live.sqlite3``."""
        return cls(Path(root) / FILENAME, read_only=read_only)

    def __repr__(self) -> str:
        return f"LiveState({str(self.path)!r}{', read_only=True' if self.read_only else ''})"

    # -- connections -------------------------------------------------------------------
    def close(self) -> None:
        """Close this thread's connection (others close theirs, or when their thread ends)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            conn.close()
        self._local.conn = None

    def _connection(self) -> sqlite3.Connection | None:
        """This thread's connection, opened on first use; None when read-only and nothing to read."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn
        if conn is not None:
            self._inherited.append(conn)
        conn = self._open_read_only() if self.read_only else self._open_writable()
        self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def _connect(self, target: str, uri: bool = False) -> sqlite3.Connection:
        conn = sqlite3.connect(target, timeout=self.timeout, isolation_level=None, uri=uri)
        conn.row_factory = sqlite3.Row
        return conn

    def _open_read_only(self) -> sqlite3.Connection | None:
        if not self.path.is_file():
            return None
        conn = self._connect(f"{self.path.as_uri()}?mode=ro", uri=True)
        try:
            if _one(conn, "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'attempts'") is None:
                conn.close()
                return None
            self._check_version(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _open_writable(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(self.path.parent)) from None
        conn = self._connect(str(self.path))
        try:
            self._use_wal(conn)
            conn.execute("PRAGMA synchronous = NORMAL")
            if self._check_version(conn) is None:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for statement in _SCHEMA:
                        conn.execute(statement)
                    conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                                 (SCHEMA_VERSION,))
                    conn.execute("COMMIT")
                except BaseException:
                    _rollback(conn)
                    raise
                self._check_version(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _use_wal(self, conn: sqlite3.Connection) -> None:
        """Switch the file to WAL mode (it stays so); retried, as the switch does not wait for a busy file."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                if _one(conn, "PRAGMA journal_mode")[0] != "wal":
                    _rows(conn, "PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc).lower() or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _check_version(self, conn: sqlite3.Connection) -> int | None:
        """The file's schema version (None before the schema exists); StoreError if it is newer than ours."""
        if _one(conn, "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'meta'") is None:
            return None
        row = _one(conn, "SELECT value FROM meta WHERE key = 'schema_version'")
        if row is None:
            return None
        if row[0] > SCHEMA_VERSION:
            raise StoreError(f"reading the live state failed at {self.path}: it was written by a newer mnistlab "
                             f"(schema {row[0]}, this one knows {SCHEMA_VERSION}): upgrade mnistlab")
        return row[0]

    # -- transactions ------------------------------------------------------------------
    @contextlib.contextmanager
    def _faults(self, action: str) -> Iterator[None]:
        """Turn faults of the disk and of SQLite met while ``action`` into :class:`StoreError`."""
        try:
            yield
        except OSError as exc:
            raise store_error(action, exc, self.path) from exc
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError)):
                raise
            raise self._sqlite_error(action, exc) from exc

    def _sqlite_error(self, action: str, exc: sqlite3.DatabaseError) -> StoreError:
        name = getattr(exc, "sqlite_errorname", "") or next(
            (code for words, code in _SQLITE_MESSAGES.items() if words in str(exc).lower()), "")
        primary = "_".join(name.split("_")[:2])
        if primary == "SQLITE_FULL":
            return store_error(action, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), self.path)
        if primary in ("SQLITE_BUSY", "SQLITE_LOCKED"):
            advice = f"another process held the database for over {self.timeout:g} s: try again"
        else:
            advice = _SQLITE_ADVICE.get(primary, f"{exc} ({name or type(exc).__name__})")
        error = StoreError(f"{action} failed at {self.path}: {advice}")
        error.errno = None
        return error

    def _read(self, action: str, query: Callable[[sqlite3.Connection], T], empty: T) -> T:
        with self._faults(action):
            conn = self._connection()
            return empty if conn is None else query(conn)

    def _write(self, action: str, change: Callable[[sqlite3.Connection], T], *, visible: bool = True) -> T:
        """Run ``change`` in one ``BEGIN IMMEDIATE`` transaction; bump data_version if it changed rows.

        ``visible=False``: a change no page shows (a heartbeat) leaves data_version alone.
        """
        if self.read_only:
            raise ReadOnlyError(f"{action} is switched off: the live state at {self.path} is open read-only")
        with self._faults(action):
            conn = self._connection()
            assert conn is not None
            conn.execute("BEGIN IMMEDIATE")
            try:
                before = conn.total_changes
                result = change(conn)
                if visible and conn.total_changes != before:
                    conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'data_version'")
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
            return result

    # -- moves -------------------------------------------------------------------------
    @staticmethod
    def _get(conn: sqlite3.Connection, attempt_id: int) -> Attempt | None:
        row = _one(conn, f"SELECT {_COLUMNS} FROM attempts WHERE id = ?", (attempt_id,))
        return None if row is None else _attempt(row)

    @classmethod
    def _require(cls, conn: sqlite3.Connection, attempt_id: int) -> Attempt:
        attempt = cls._get(conn, attempt_id)
        if attempt is None:
            raise NoSuchAttempt(f"there is no attempt {attempt_id} in the live state (it may have been cleaned up)")
        return attempt

    @staticmethod
    def _move(conn: sqlite3.Connection, attempt: Attempt, new: str, now: float, **values: Any) -> None:
        """Move ``attempt`` to state ``new`` (checked against the table), setting ``values`` too.

        Into ``queued`` the attempt starts afresh: no worker, no start, no history.
        """
        check_transition(attempt.id, attempt.state, new)
        if new == "queued":
            values = {"worker": None, "pid": None, "host": None, "started_at": None, "heartbeat_at": None,
                      "history": "[]", **values}
        columns = "".join(f", {name} = ?" for name in values)
        conn.execute(f"UPDATE attempts SET state = ?, updated_at = ?{columns} WHERE id = ? AND state = ?",
                     (new, now, *values.values(), attempt.id, attempt.state))

    def _reap(self, conn: sqlite3.Connection, now: float, stale_after: float, max_tries: int) -> list[int]:
        host = socket.gethostname()
        rows = _rows(conn, f"SELECT {_COLUMNS} FROM attempts WHERE state = 'interrupted' OR (state = 'training' "
                           "AND COALESCE(heartbeat_at, started_at, queued_at) < ?) ORDER BY id",
                     (now - stale_after,))
        changed = []
        for attempt in map(_attempt, rows):
            if attempt.state == "training":
                beat = attempt.heartbeat_at or attempt.started_at or attempt.queued_at
                if attempt.host == host:
                    if _process_alive(attempt.pid):
                        continue
                elif beat >= now - stale_after * REMOTE_STALE_FACTOR:
                    continue
                cause = "its worker process died"
            else:
                cause = "its worker stopped"
            tries = attempt.tries + 1
            other = _one(conn, f"SELECT id FROM attempts WHERE run_id = ? AND id != ? AND state IN {_in(ACTIVE)}",
                         (attempt.run_id, attempt.id))
            if attempt.cancel_requested:
                message = f"cancelled ({cause} before it stopped)"
                self._move(conn, attempt, "cancelled", now, tries=tries, message=message)
            elif other is not None:
                self._move(conn, attempt, "cancelled", now, tries=tries, dismissed=1,
                           message=f"{cause}; launched again as attempt {other[0]}")
            elif tries >= max_tries:
                self._move(conn, attempt, "failed", now, tries=tries, message=f"{cause} {tries} times")
            else:
                self._move(conn, attempt, "queued", now, tries=tries, message=f"{cause}; requeued")
            changed.append(attempt.id)
        return changed

    # -- launching and working -------------------------------------------------------
    def launch(self, items: Iterable[tuple[str, dict[str, Any], str, int]], *,
               is_stored: Callable[[str], bool] = lambda run_id: False, sweep: str | None = None) -> list[Attempt]:
        """Queue runs in one transaction; returns the attempts created, in queue order.

        ``items``: ``(run_id, config, canonical_json, epochs_total)``. A run already stored
        (``is_stored(run_id)``, asked inside the transaction after the active check, so a worker
        that writes its run folder before :meth:`finish` is never raced), already queued or
        training, or repeated in ``items`` is skipped. A bad item queues nothing.
        """
        todo = [_launch_item(item) for item in items]
        if sweep is not None and not isinstance(sweep, str):
            raise ValueError(f"sweep must be a string or None, got {sweep!r}")

        def change(conn: sqlite3.Connection) -> list[Attempt]:
            now = time.time()
            seen: set[str] = set()
            created = []
            for run_id, config, canonical, epochs_total in todo:
                if run_id in seen:
                    continue
                seen.add(run_id)
                if _one(conn, f"SELECT id FROM attempts WHERE run_id = ? AND state IN {_in(ACTIVE)}", (run_id,)):
                    continue
                if is_stored(run_id):
                    continue
                cursor = conn.execute(
                    "INSERT INTO attempts (run_id, config, canonical, state, queued_at, updated_at, epochs_total, "
                    "message, sweep) VALUES (?, ?, ?, 'queued', ?, ?, ?, 'waiting for its turn', ?)",
                    (run_id, config, canonical, now, now, epochs_total, sweep))
                created.append(cursor.lastrowid)
            return [self._require(conn, attempt_id) for attempt_id in created]

        return self._write("queueing runs for training", change)

    def claim(self, worker: str, cap: int | None, *, run_id: str | None = None, pid: int | None = None,
              stale_after: float = 5.0, max_tries: int = 3) -> Attempt | None:
        """Take the oldest queued attempt (or ``run_id``'s) for ``worker``, if fewer than ``cap`` train.

        One transaction: dead attempts are reaped first (see :meth:`reap`, with ``stale_after``
        and ``max_tries``), then the attempts in training are counted. ``cap`` None: no limit.
        Returns the attempt now ``training`` (held by ``worker``, process ``pid`` (default this
        one) on this host), or None when the cap is reached or nothing is queued.
        """
        if not isinstance(worker, str) or not worker:
            raise ValueError(f"worker must be a non-empty string, got {worker!r}")
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise ValueError(f"cap must be an integer >= 1 or None (no limit), got {cap!r}")
        _check_reap_args(stale_after, max_tries)

        def change(conn: sqlite3.Connection) -> Attempt | None:
            now = time.time()
            self._reap(conn, now, stale_after, max_tries)
            if cap is not None and _one(conn, "SELECT COUNT(*) FROM attempts WHERE state = 'training'")[0] >= cap:
                return None
            if run_id is None:
                row = _one(conn, "SELECT id FROM attempts WHERE state = 'queued' ORDER BY id LIMIT 1")
            else:
                row = _one(conn, "SELECT id FROM attempts WHERE state = 'queued' AND run_id = ?", (run_id,))
            if row is None:
                return None
            attempt = self._require(conn, row[0])
            self._move(conn, attempt, "training", now, worker=worker, pid=pid or os.getpid(),
                       host=socket.gethostname(), started_at=now, heartbeat_at=now, message="starting")
            return self._get(conn, attempt.id)

        return self._write(f"claiming a run for worker {worker}", change)

    def heartbeat(self, attempt_id: int) -> bool:
        """Say that the worker training ``attempt_id`` lives; returns whether a cancel was requested.

        Heartbeats do not count as changes in :meth:`data_version` (nothing a page shows changes).
        """
        def change(conn: sqlite3.Connection) -> bool:
            conn.execute("UPDATE attempts SET heartbeat_at = ? WHERE id = ? AND state = 'training'",
                         (time.time(), attempt_id))
            row = _one(conn, "SELECT cancel_requested FROM attempts WHERE id = ?", (attempt_id,))
            return bool(row and row[0])

        return self._write(f"recording the heartbeat of attempt {attempt_id}", change, visible=False)

    def record_epoch(self, attempt_id: int, history: list[dict[str, Any]], message: str = "") -> None:
        """Store the history so far (one record per epoch) of a training attempt; it beats too."""
        if not isinstance(history, list):
            raise ValueError(f"history must be a list of per-epoch records, got {type(history).__name__}")
        text = _json(history)

        def change(conn: sqlite3.Connection) -> None:
            attempt = self._require(conn, attempt_id)
            if attempt.state != "training":
                raise TransitionError(f"attempt {attempt_id} is {attempt.state}; only a training attempt "
                                      "records epochs")
            now = time.time()
            conn.execute("UPDATE attempts SET history = ?, message = ?, updated_at = ?, heartbeat_at = ? "
                         "WHERE id = ?", (text, str(message), now, now, attempt_id))

        self._write(f"recording progress of attempt {attempt_id}", change)

    def set_message(self, attempt_id: int, message: str) -> None:
        """Set what people read about an attempt (e.g. ``loading data``)."""
        def change(conn: sqlite3.Connection) -> None:
            self._require(conn, attempt_id)
            conn.execute("UPDATE attempts SET message = ?, updated_at = ? WHERE id = ?",
                         (str(message), time.time(), attempt_id))

        self._write(f"setting the message of attempt {attempt_id}", change)

    def finish(self, attempt_id: int, state: str, message: str = "") -> None:
        """Move an attempt to ``state`` (normally a terminal one), checked against :data:`TRANSITIONS`.

        Only :meth:`claim` moves an attempt into ``training`` (it records the worker and the cap).
        """
        if state == "training":
            raise TransitionError(f"attempt {attempt_id} cannot be finished as training: claim() starts attempts")

        def change(conn: sqlite3.Connection) -> None:
            self._move(conn, self._require(conn, attempt_id), state, time.time(), message=str(message))

        self._write(f"finishing attempt {attempt_id} as {state}", change)

    def request_cancel(self, attempt_id: int) -> None:
        """Cancel an attempt: one not training yet is cancelled at once, a training one is asked to stop.

        The request belongs to this attempt only. Cancelling an attempt that has ended, or that is
        gone, does nothing (two clicks, or a click on a stale page, are not errors).
        """
        def change(conn: sqlite3.Connection) -> None:
            attempt = self._get(conn, attempt_id)
            if attempt is None or attempt.state in TERMINAL:
                return
            if attempt.state == "training":
                conn.execute("UPDATE attempts SET cancel_requested = 1, updated_at = ? WHERE id = ? "
                             "AND cancel_requested = 0", (time.time(), attempt_id))
            else:
                self._move(conn, attempt, "cancelled", time.time(), cancel_requested=1,
                           message="cancelled before it started")

        self._write(f"cancelling attempt {attempt_id}", change)

    def cancel_requested(self, attempt_id: int) -> bool:
        row = self._read(f"reading attempt {attempt_id}", lambda conn: _one(
            conn, "SELECT cancel_requested FROM attempts WHERE id = ?", (attempt_id,)), None)
        return bool(row and row[0])

    def dismiss(self, attempt_id: int) -> None:
        """Hide an ended attempt from :meth:`recent` (a gone one is ignored)."""
        def change(conn: sqlite3.Connection) -> None:
            attempt = self._get(conn, attempt_id)
            if attempt is None:
                return
            if attempt.state not in TERMINAL:
                raise TransitionError(f"attempt {attempt_id} is {attempt.state}; only an attempt that has ended "
                                      f"({', '.join(TERMINAL)}) can be dismissed")
            conn.execute("UPDATE attempts SET dismissed = 1 WHERE id = ? AND dismissed = 0", (attempt_id,))

        self._write(f"dismissing attempt {attempt_id}", change)

    def reap(self, *, stale_after: float = 5.0, max_tries: int = 3) -> list[Attempt]:
        """Requeue or fail the attempts whose worker is gone; returns them as they are now.

        An attempt in training is gone when its heartbeat is older than ``stale_after`` seconds
        and its process has ended (on this host), or, held on another host, when its heartbeat
        is older than ``stale_after * REMOTE_STALE_FACTOR``. An ``interrupted`` attempt is
        always taken up. Each counts one more try: requeued while its tries stay below
        ``max_tries`` (so an attempt starts at most ``max_tries`` times), else ``failed``. One
        whose cancel was requested is ``cancelled``; one whose run was launched again meanwhile
        is ``cancelled`` and dismissed.
        """
        _check_reap_args(stale_after, max_tries)

        def change(conn: sqlite3.Connection) -> list[Attempt]:
            return [self._require(conn, attempt_id)
                    for attempt_id in self._reap(conn, time.time(), stale_after, max_tries)]

        return self._write("requeueing the runs of dead workers", change)

    def cleanup(self, older_than: float = 7 * 86400) -> int:
        """Delete attempts that ended more than ``older_than`` seconds ago; returns how many."""
        if isinstance(older_than, bool) or not isinstance(older_than, (int, float)) or older_than < 0:
            raise ValueError(f"older_than must be a number of seconds >= 0, got {older_than!r}")

        def change(conn: sqlite3.Connection) -> int:
            return conn.execute(f"DELETE FROM attempts WHERE state IN {_in(TERMINAL)} AND updated_at < ?",
                                (time.time() - older_than,)).rowcount

        return self._write("cleaning up old attempts", change)

    # -- reading -----------------------------------------------------------------------
    def get(self, attempt_id: int) -> Attempt | None:
        return self._read(f"reading attempt {attempt_id}", lambda conn: self._get(conn, attempt_id), None)

    def latest(self, run_id: str) -> Attempt | None:
        """The newest attempt of ``run_id``, whatever its state."""
        row = self._read(f"reading the attempts of run {run_id}", lambda conn: _one(
            conn, f"SELECT {_COLUMNS} FROM attempts WHERE run_id = ? ORDER BY id DESC LIMIT 1", (run_id,)), None)
        return None if row is None else _attempt(row)

    def active(self) -> list[Attempt]:
        """Attempts in training, then the queue, in the order they will run."""
        rows = self._read("reading the queue", lambda conn: _rows(
            conn, f"SELECT {_COLUMNS} FROM attempts WHERE state IN {_in(ACTIVE)} "
                  "ORDER BY state = 'queued', id"), [])
        return [_attempt(row) for row in rows]

    def recent(self, limit: int = 50) -> list[Attempt]:
        """Attempts that ended without a result (cancelled, failed, diverged), not dismissed, newest first."""
        rows = self._read("reading recent attempts", lambda conn: _rows(
            conn, f"SELECT {_COLUMNS} FROM attempts WHERE state IN {_in(PROBLEMS)} AND dismissed = 0 "
                  "ORDER BY updated_at DESC, id DESC LIMIT ?", (int(limit),)), [])
        return [_attempt(row) for row in rows]

    def counts(self) -> dict[str, int]:
        """How many attempts are in each state that a page lists: active, interrupted, recent problems."""
        unfinished = (*ACTIVE, "interrupted")
        rows = self._read("counting attempts", lambda conn: _rows(
            conn, f"SELECT state, COUNT(*) FROM attempts WHERE state IN {_in(unfinished)} "
                  f"OR (state IN {_in(PROBLEMS)} AND dismissed = 0) GROUP BY state"), [])
        return {**dict.fromkeys((*unfinished, *PROBLEMS), 0), **{state: count for state, count in rows}}

    def data_version(self) -> int:
        """A counter that grows with every committed change a page shows: poll it, redraw when it moved."""
        row = self._read("reading the live state's version", lambda conn: _one(
            conn, "SELECT value FROM meta WHERE key = 'data_version'"), None)
        return int(row[0]) if row else 0

    def activity(self) -> tuple[int, int]:
        """``(active, ended)``: how many attempts are queued or training, and how many have ended.

        One query, for pages that poll: it moves when an attempt is launched, starts over,
        finishes, fails or is cleaned up, not with every epoch (as :meth:`data_version` does).
        (0, 0) without a live state. Any thread may call it: it reads through one read-only
        connection of its own, kept open (a poll opens no file, and the page's connection keeps
        the WAL file alive, so the store's folder does not change under the poll).
        """
        with self._poll_lock, self._faults("reading the live state's activity"):
            try:
                inode = os.stat(self.path).st_ino
            except FileNotFoundError:
                inode = None
            pid, known, conn = self._poll or (None, None, None)
            if conn is not None and (pid != os.getpid() or known != inode):  # forked, or the file was replaced
                if pid == os.getpid():
                    conn.close()
                self._poll = conn = None
            if inode is None:
                return (0, 0)
            if conn is None:
                conn = sqlite3.connect(f"{self.path.as_uri()}?mode=ro", uri=True, timeout=self.timeout,
                                       isolation_level=None, check_same_thread=False)
                self._poll = (os.getpid(), inode, conn)
            try:
                row = _one(conn, f"SELECT COALESCE(SUM(state IN {_in(ACTIVE)}), 0), "
                                 f"COALESCE(SUM(state IN {_in(TERMINAL)}), 0) FROM attempts")
            except sqlite3.DatabaseError as exc:
                conn.close()  # opened afresh by the next poll
                self._poll = None
                if "no such table" in str(exc):
                    return (0, 0)  # a file whose schema is being created
                raise
            return (int(row[0]), int(row[1]))

    # -- sweeps: which runs belong to which sweep (two tables of their own) ---------------
    # ``sweeps(name, created_at, spec)`` and ``sweep_runs(sweep, run_id, position)``: a sweep's
    # runs, stored ones included, in the sweep's order. Created on first use; the attempts
    # table and its rules are untouched (an attempt's ``sweep`` column names who launched it).
    def add_to_sweep(self, name: str, run_ids: Iterable[str], spec: dict[str, Any] | None = None) -> int:
        """Record that ``run_ids`` belong to sweep ``name`` (in that order, after the ones it has).

        ``spec``: what the sweep is (its grids), kept for people. Returns how many were added.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"a sweep name must be a non-empty string, got {name!r}")
        ids = [run_id for run_id in dict.fromkeys(run_ids)]
        if not all(isinstance(run_id, str) and run_id for run_id in ids):
            raise ValueError("each run id of a sweep must be a non-empty string")
        spec_text = None if spec is None else _json(spec)

        def change(conn: sqlite3.Connection) -> int:
            for statement in _SWEEP_SCHEMA:
                conn.execute(statement)
            conn.execute("INSERT OR IGNORE INTO sweeps (name, created_at, spec) VALUES (?, ?, '{}')",
                         (name, time.time()))
            if spec_text is not None:
                conn.execute("UPDATE sweeps SET spec = ? WHERE name = ? AND spec != ?", (spec_text, name, spec_text))
            start = _one(conn, "SELECT COALESCE(MAX(position), -1) + 1 FROM sweep_runs WHERE sweep = ?", (name,))[0]
            added = 0
            for run_id in ids:
                added += conn.execute("INSERT OR IGNORE INTO sweep_runs (sweep, run_id, position) VALUES (?, ?, ?)",
                                      (name, run_id, start + added)).rowcount
            return added

        return self._write(f"recording the runs of sweep {name}", change)

    def _has_sweeps(self, conn: sqlite3.Connection) -> bool:
        return _one(conn, "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'sweep_runs'") is not None

    def sweeps(self) -> list[dict[str, Any]]:
        """Every sweep, newest first: ``{"name", "created_at", "runs", "spec"}``."""
        def query(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            if not self._has_sweeps(conn):
                return []
            rows = _rows(conn, "SELECT s.name, s.created_at, s.spec, (SELECT COUNT(*) FROM sweep_runs r WHERE "
                               "r.sweep = s.name) FROM sweeps s ORDER BY s.created_at DESC, s.name")
            return [{"name": r[0], "created_at": r[1], "spec": json.loads(r[2] or "{}"), "runs": r[3]} for r in rows]

        return self._read("reading the sweeps", query, [])

    def sweep_run_ids(self, name: str) -> list[str]:
        """The run ids of sweep ``name`` in its order (recorded ones, then any other attempt that names it)."""
        def query(conn: sqlite3.Connection) -> list[str]:
            ids = [r[0] for r in _rows(conn, "SELECT run_id FROM sweep_runs WHERE sweep = ? ORDER BY position",
                                       (name,))] if self._has_sweeps(conn) else []
            ids += [r[0] for r in _rows(conn, "SELECT run_id FROM attempts WHERE sweep = ? ORDER BY id", (name,))]
            return list(dict.fromkeys(ids))

        return self._read(f"reading the runs of sweep {name}", query, [])

    def sweep_attempts(self, name: str) -> dict[str, Attempt]:
        """The newest attempt of each run of sweep ``name`` (whoever launched it), by run id."""
        run_ids = self.sweep_run_ids(name)
        if not run_ids:
            return {}

        def query(conn: sqlite3.Connection) -> list[sqlite3.Row]:
            rows = []
            for start in range(0, len(run_ids), 500):
                chunk = run_ids[start:start + 500]
                marks = ", ".join("?" * len(chunk))
                rows += _rows(conn, f"SELECT {_COLUMNS} FROM attempts WHERE id IN (SELECT MAX(id) FROM attempts "
                                    f"WHERE run_id IN ({marks}) GROUP BY run_id)", tuple(chunk))
            return rows

        return {row["run_id"]: _attempt(row) for row in self._read(f"reading the attempts of sweep {name}", query, [])}

    def forget_sweep(self, name: str) -> None:
        """Forget which runs belong to sweep ``name`` (its runs and attempts stay)."""
        def change(conn: sqlite3.Connection) -> None:
            if self._has_sweeps(conn):
                conn.execute("DELETE FROM sweep_runs WHERE sweep = ?", (name,))
                conn.execute("DELETE FROM sweeps WHERE name = ?", (name,))

        self._write(f"forgetting sweep {name}", change)


_SWEEP_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS sweeps (name TEXT PRIMARY KEY, created_at REAL NOT NULL, spec TEXT NOT NULL DEFAULT '{}')",
    ("CREATE TABLE IF NOT EXISTS sweep_runs (sweep TEXT NOT NULL, run_id TEXT NOT NULL, position INTEGER NOT NULL, "
     "PRIMARY KEY (sweep, run_id))"),
)


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def _check_reap_args(stale_after: float, max_tries: int) -> None:
    if isinstance(stale_after, bool) or not isinstance(stale_after, (int, float)) or stale_after < 0:
        raise ValueError(f"stale_after must be a number of seconds >= 0, got {stale_after!r}")
    if isinstance(max_tries, bool) or not isinstance(max_tries, int) or max_tries < 1:
        raise ValueError(f"max_tries must be an integer >= 1, got {max_tries!r}")


class Heartbeat:
    """Beat for one attempt from a daemon thread while a worker trains it::

        with Heartbeat(live, attempt.id) as beat:
            for batch in ...:
                if beat.cancelled.is_set():
                    ...

    ``cancelled`` is set once a cancel of the attempt was requested. A failed beat (the
    database busy for a moment) is counted in ``failures`` and kept in ``error``, and the
    thread goes on; it stops, and closes its connection, when the block exits.
    """

    def __init__(self, live: LiveState, attempt_id: int, interval: float = 1.0):
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval <= 0:
            raise ValueError(f"interval must be a number of seconds > 0, got {interval!r}")
        self.live = live
        self.attempt_id = attempt_id
        self.interval = float(interval)
        self.cancelled = threading.Event()
        self.failures = 0
        self.error: Exception | None = None  # the last failed beat's error; None after a good beat
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Heartbeat:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"the heartbeat of attempt {self.attempt_id} is already beating")
        self._thread = threading.Thread(target=self._run, name=f"mnistlab-heartbeat-{self.attempt_id}",
                                        daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        """Whether the beating thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        try:
            while True:
                try:
                    if self.live.heartbeat(self.attempt_id):
                        self.cancelled.set()
                    self.error = None
                except Exception as exc:
                    self.failures += 1
                    self.error = exc
                if self._stop.wait(self.interval):
                    return
        finally:
            with contextlib.suppress(sqlite3.Error):
                self.live.close()
