"""Failures told as they are: what went wrong, in one line an operator can act on.

* :func:`describe_failure` — ``"<ExceptionType>: <message>"`` of an exception's root cause (the end of its
  ``raise ... from`` chain), with the outer error's words kept when they say more (``LLMCallsFailed: every
  judge call failed ...``). What eval runs record as their failure reason.
* :func:`describe_run_failure` — the cause of a run whose worker died: a negative exit code (or Dagster's
  ``exited with code -9`` / ``terminated by signal 9``) is a signal, ``killed by signal 9 (SIGKILL: out of
  memory or killed)``.
* :func:`database_unreachable` — whether an error means "the registry database cannot be reached"
  (connection refused, the server went away, the pool is exhausted, SQLite's file cannot be opened or stays
  locked) as opposed to a programming error (bad SQL, a missing table, a constraint): the API answers the
  first with 503 and ``Retry-After``, the second with 500; the CLI prints one line instead of a traceback.
* :func:`redact_url` — a database URL without its password, safe to print.
"""

from __future__ import annotations

import re
import signal

#: Longest description recorded (status reasons hold 2000 characters).
MAX_DESCRIPTION = 1000

# SQLSTATE classes of PostgreSQL that mean the server cannot serve us (rather than a bad statement):
# 08 connection exception, 53 insufficient resources (too many connections, out of memory, disk full),
# 57P01-57P05 admin/crash shutdown, cannot connect now, idle session timeout.
_UNREACHABLE_SQLSTATE_CLASSES = ("08", "53")
_UNREACHABLE_SQLSTATES = ("57P01", "57P02", "57P03", "57P04", "57P05")
# SQLite reports these as OperationalError; every other OperationalError of SQLite ("no such table",
# "syntax error") is a programming error.
_SQLITE_UNAVAILABLE = ("unable to open database file", "database is locked", "disk i/o error", "database or disk is full")
_DRIVER_MODULES = ("psycopg2", "psycopg", "pg8000", "asyncpg", "sqlite3", "pymysql", "MySQLdb")

_SIGNAL_MEANINGS = {
    signal.SIGKILL: "out of memory or killed",
    signal.SIGTERM: "terminated",
    signal.SIGINT: "interrupted",
    signal.SIGSEGV: "crashed: segmentation fault",
    signal.SIGABRT: "aborted",
    signal.SIGBUS: "crashed: bus error",
    signal.SIGHUP: "hung up",
}


def causes(error: BaseException) -> list[BaseException]:
    """``error`` and the errors it was raised from (``__cause__``, and a DBAPI error's ``orig``), outermost first."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and all(current is not seen for seen in chain) and len(chain) < 20:
        chain.append(current)
        nxt = current.__cause__
        if nxt is None:
            nxt = getattr(current, "orig", None)  # SQLAlchemy's DBAPIError keeps the driver's error here
            if not isinstance(nxt, BaseException):
                nxt = None
        current = nxt
    return chain


def _driver_error(error: BaseException) -> bool:
    return type(error).__module__.split(".")[0] in _DRIVER_MODULES


def database_unreachable(error: BaseException) -> bool:
    """True when ``error`` (or what it was raised from) says the database cannot be reached or cannot serve
    now; False for programming errors (SQL, schema, constraints) and for anything else."""
    return any(_sqlalchemy_lost_connection(cause) or _driver_says_unreachable(cause) for cause in causes(error))


def _sqlalchemy_lost_connection(cause: BaseException) -> bool:
    """A pool checkout that failed or found the pool exhausted, or a DBAPI error that invalidated the connection."""
    # imported here: SQLAlchemy takes ~0.1 s to import and most callers (the CLI's error path) never need it
    from sqlalchemy import exc as sa_exc

    if isinstance(cause, sa_exc.DisconnectionError | sa_exc.TimeoutError):
        return True
    return isinstance(cause, sa_exc.DBAPIError) and bool(cause.connection_invalidated)


def _driver_says_unreachable(cause: BaseException) -> bool:
    """A database driver's own error meaning "cannot connect / cannot serve now" (by SQLite message or SQLSTATE)."""
    if not _driver_error(cause):
        return False
    name, module = type(cause).__name__, type(cause).__module__.split(".")[0]
    if module == "sqlite3":
        return name == "OperationalError" and str(cause).strip().lower().startswith(_SQLITE_UNAVAILABLE)
    code = getattr(cause, "pgcode", None) or getattr(cause, "sqlstate", None)
    if code:
        return code[:2] in _UNREACHABLE_SQLSTATE_CLASSES or code in _UNREACHABLE_SQLSTATES
    # no SQLSTATE: the error came from the client library (could not connect, the connection broke)
    return name in ("OperationalError", "InterfaceError") or isinstance(cause, ConnectionError | TimeoutError)


def redact_url(url: str) -> str:
    """``scheme://user:***@host:port/db``: the URL with any password masked (and nothing else changed)."""
    url = str(url)
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    if "@" not in authority:
        return url
    userinfo, host = authority.rsplit("@", 1)  # the last "@" ends the credentials (a password may hold "@")
    if ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}{slash}{path}"


def _clean(message: str) -> str:
    """One line: a DBAPI error's SQLAlchemy trailer (and any SQL with its parameters) dropped, whitespace folded."""
    text = re.split(r"\n\s*\(Background on this error at:", message)[0]
    text = re.split(r"\n\s*\[SQL:", text)[0]
    text = re.sub(r"\s*\n\s*", "; ", text.strip())
    text = re.sub(r"^\((?:[\w.]+)\)\s*", "", text)  # SQLAlchemy's "(psycopg2.OperationalError) " prefix
    return text.strip("; ")


def _described(error: BaseException) -> str:
    message = _clean(str(error))
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def describe_failure(error: BaseException) -> str:
    """``"<ExceptionType>: <message>"`` of the root cause of ``error``, in one line.

    The root cause is the end of the ``raise ... from`` chain (``__cause__``; a SQLAlchemy error's driver
    error). When the outer error's message says more than the root's (an error of the platform naming the
    field or the step, wrapped around a library error), both are kept: ``"Outer: ...; cause: Root: ..."``.
    An unreachable database reads ``"<DriverError>: the database is unreachable: <why>"``."""
    chain = causes(error)
    root = chain[-1]
    root_text = _described(root)
    if database_unreachable(error):
        described = f"{type(root).__name__}: the database is unreachable: {_clean(str(root)) or type(root).__name__}"
    elif root is error:
        described = root_text
    else:
        # the outermost wrapper with words of its own (an error of the platform naming the field or the step)
        outer = next((e for e in chain[:-1] if _clean(str(e))), None)
        root_message = _clean(str(root))
        if outer is None:
            described = root_text
        elif root_message and root_message in _clean(str(outer)):  # the wrapper quotes the root: keep its words
            described = f"{_described(outer)} ({type(root).__name__})"
        else:
            described = f"{_described(outer)}; cause: {root_text}"
    return described if len(described) <= MAX_DESCRIPTION else described[: MAX_DESCRIPTION - 3] + "..."


_EXIT_CODE = re.compile(r"(?:exit(?:ed)?\s+(?:with\s+)?(?:code|status)|return\s*code|returncode|exitcode)\s*[:=]?\s*(-?\d+)", re.I)
_SIGNAL = re.compile(r"(?:terminated|killed)\s+by\s+signal\s+(\d+)", re.I)


def _signal_text(number: int) -> str:
    try:
        sig = signal.Signals(number)
    except ValueError:
        return f"killed by signal {number}"
    meaning = _SIGNAL_MEANINGS.get(sig)
    return f"killed by signal {number} ({sig.name}: {meaning})" if meaning else f"killed by signal {number} ({sig.name})"


def describe_run_failure(message: str | None = None, exit_code: int | None = None) -> str:
    """The cause of a failed run in one line, from what the orchestrator reported.

    ``exit_code``: the worker's exit code when known; negative is a signal (Python's convention, as
    Dagster reports it), 128+N is a signal as a shell reports it. Without it, an exit code or a signal
    is read from ``message`` (``"... exited with code -9"``, ``"terminated by signal 9"``, ``"exit code
    137"``). ``MemoryError`` in the message reads "out of memory". The orchestrator's first line follows
    the cause: ``"killed by signal 9 (SIGKILL: out of memory or killed); <message>"``."""
    text = " ".join((message or "").split())
    if exit_code is None:
        exit_code = _exit_code_in(text)
    cause = _exit_cause(exit_code)
    if cause is None and re.search(r"\bMemoryError\b|out of memory|\bOOM\b", text, re.I):
        cause = "out of memory"
    first_line = (message or "").strip().splitlines()[0].strip() if (message or "").strip() else ""
    if cause is None:
        described = first_line or "the run failed without a reason"
    elif first_line and first_line.lower() != cause.lower():
        described = f"{cause}; {first_line}"
    else:
        described = cause
    return described if len(described) <= MAX_DESCRIPTION else described[: MAX_DESCRIPTION - 3] + "..."


def _exit_code_in(text: str) -> int | None:
    """The exit code an orchestrator's message reports: a signal as its negative number, else a code, else None."""
    found = _SIGNAL.search(text)
    if found:
        return -int(found.group(1))
    found = _EXIT_CODE.search(text)
    return int(found.group(1)) if found else None


def _exit_cause(exit_code: int | None) -> str | None:
    """What an exit code means: a signal (negative, or 128+N from a shell), a non-zero exit, or None."""
    if exit_code is None or exit_code == 0:
        return None
    if exit_code < 0:
        return _signal_text(-exit_code)
    if exit_code > 128 and exit_code - 128 in {s.value for s in signal.Signals}:
        return _signal_text(exit_code - 128)
    return f"exited with code {exit_code}"
