"""One hierarchy of errors: what went wrong, named for the person who can fix it.

Every error mnistlab raises on purpose is a :class:`MnistlabError`. Usage errors (bad
configuration, bad data path, beyond a hosted instance's limits, a bundle that is refused)
also subclass :class:`ValueError`; faults of the machine (no space, read-only disk, no
permission) are :class:`StoreError`, with the path and what to do. The CLI exits 2 for the
first kind and 1 for the second; pages show the message, never a traceback.
"""

from __future__ import annotations

import errno


class MnistlabError(Exception):
    """Anything mnistlab refuses or cannot do, with a message that says why."""


class ConfigError(MnistlabError, ValueError):
    """A configuration value is out of range or of the wrong kind."""


class DataError(MnistlabError, ValueError):
    """A data source is missing or not in the expected layout."""


class LimitError(ConfigError):
    """A run beyond this instance's limits."""


class ReadOnlyError(MnistlabError, PermissionError):
    """A writing action on a read-only instance."""


class BundleError(MnistlabError, ValueError):
    """A bundle that cannot be imported; nothing was changed."""


class StoreError(MnistlabError):
    """The store cannot be read or written (no space, read-only, no permission, not a folder)."""


class BrokenRun(MnistlabError):
    """A run folder that cannot be read: missing or invalid files, or a wrong id."""

    def __init__(self, run_id: str, reason: str):
        super().__init__(f"run {run_id} is broken: {reason}")
        self.run_id = run_id
        self.reason = reason


_ADVICE = {
    errno.ENOSPC: "the disk is full: free some space (or move the store with MNISTLAB_STORE) and try again",
    errno.EDQUOT: "the disk quota is used up: free some space and try again",
    errno.EROFS: "the file system is read-only: point MNISTLAB_STORE at a writable folder",
    errno.EACCES: "permission denied: make the folder writable for this user or choose another store",
    errno.EPERM: "operation not permitted: make the folder writable for this user or choose another store",
    errno.ENOTDIR: "a path in it is a file, not a folder: point MNISTLAB_STORE at a folder",
}


def store_error(action: str, exc: OSError, path=None) -> StoreError:
    """A :class:`StoreError` for an ``OSError`` met while ``action`` (e.g. "writing run 0123…")."""
    where = path if path is not None else (exc.filename or "the store")
    advice = _ADVICE.get(exc.errno, f"{exc.strerror or type(exc).__name__}")
    error = StoreError(f"{action} failed at {where}: {advice}")
    error.errno = exc.errno
    return error
