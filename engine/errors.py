"""The one error tree of glam.

Every failure that crosses a module boundary is a ``GlamError``. Adapters translate botocore,
aiosqlite, sqlite3, psycopg and dulwich errors into it at the boundary, so the core and the CLI
never see a third-party exception. Each error says whether repeating the same call could
succeed (``retryable``); the CLI catches the root once and prints ``hint`` as the one line that
says what to do.

    GlamError
    ├── UsageError                 bad flags or arguments (CLI exit 2)
    ├── ConfigError                a setting or environment that cannot work
    │   ├── ConfigFileError        glam.toml is invalid: every mistake, located
    │   └── AccountNotConfigured   a function's account has no role for the engine to assume
    ├── StoreError                 the event log
    │   ├── ConcurrencyConflict    expected stream version is stale (retryable after re-read)
    │   ├── StoreCorrupt           integrity check, hash chain or file format failed
    │   ├── StoreTooNew            file written by a newer glam
    │   ├── StoreLocked            another engine owns the database
    │   ├── FencedOut              an append for a shard whose lease this engine no longer
    │   │                          holds (a stale fencing epoch): refused, nothing applied
    │   ├── StoreUnavailable       the database server cannot be reached (retryable)
    │   └── EventDecodeError       unknown event type or schema version
    ├── SourceError                the Git repository
    │   └── SourceUnreachable      remote or branch cannot be reached (retryable)
    ├── DefinitionError            a file in the user's repository is invalid
    ├── AwsError                   an AWS call failed
    │   ├── AwsThrottled           429 / throttling (retryable)
    │   ├── AwsConflict            ResourceConflictException: update in progress (retryable)
    │   ├── AwsNotFound            the resource does not exist
    │   ├── AwsInvalid             AWS refused the request as invalid (not retryable)
    │   └── AwsAmbiguous           a mutation whose outcome is unknown (read before repeating)
    └── LocalAwsError              the embedded AWS could not start or is not installed

    InvariantViolation             (engine.saga.state; an AssertionError, outside the tree)
                                   the saga was about to break a rule that protects live
                                   traffic: always a bug in glam. The engine stops that one
                                   function's saga, as it does on a GlamError.
"""

from __future__ import annotations


class GlamError(Exception):
    """Root of every error glam raises on purpose."""

    retryable: bool = False
    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None, retryable: bool | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if retryable is not None:
            self.retryable = retryable

    def one_line(self) -> str:
        """The message and what to do, on one line, for the CLI."""
        return f"{self.message} — {self.hint}" if self.hint else self.message


class UsageError(GlamError):
    """Raised by the CLI for flags or arguments that cannot work (exit code 2)."""

    exit_code = 2


class ConfigError(GlamError):
    """Raised when a setting or the environment cannot work: the engine's limits, the demo's
    folder, a failpoint specification."""


class ConfigFileError(ConfigError):
    """Raised when a configuration file is invalid. ``problems`` holds one line per mistake,
    each located (``glam.toml:12: repository[2].branches: ...``); all are reported at once."""

    exit_code = 2

    def __init__(self, path: str, problems: list[str]):
        count = len(problems)
        noun = "mistake" if count == 1 else "mistakes"
        super().__init__(f"{path}: {count} {noun}", hint="fix each line below")
        self.path = path
        self.problems = tuple(problems)

    def one_line(self) -> str:
        """The summary, then one line per mistake (the CLI prints them all)."""
        return "\n".join([f"{self.message}:", *(f"  {p}" for p in self.problems)])


class AccountNotConfigured(ConfigError):
    """Raised for an AWS account the engine cannot act in: not its own, and no configured
    role to assume there."""


class StoreError(GlamError):
    """Raised by an event store when the log cannot be read or written; the engine stops."""


class ConcurrencyConflict(StoreError):
    """Raised by ``append`` when the stream moved past the expected version: re-read it and
    decide again."""

    retryable = True


class StoreCorrupt(StoreError):
    """Raised when the file is not a readable glam log: integrity check, format or hash chain."""


class StoreTooNew(StoreError):
    """Raised on opening a log whose file format a newer glam wrote."""


class StoreLocked(StoreError):
    """Raised when another engine holds the database's lock (one writer per log)."""


class FencedOut(StoreError):
    """Raised by a fenced append when its shard's lease has another epoch, another owner or
    has expired: another engine may own the shard now, so nothing was written. The saga that
    made it stops; the shard's new owner resumes it from the log."""


class StoreUnavailable(StoreError):
    """Raised when the database server cannot be reached or dropped the connection; a write
    that failed this way may or may not be stored, and repeating it with the same event ids
    is safe."""

    retryable = True


class EventDecodeError(StoreError):
    """Raised when a stored event cannot be read: unknown type, newer schema version, or data
    that does not validate."""


class SourceError(GlamError):
    """Raised by the Git source for a repository glam cannot use as given (no token, not a
    commit, no mirror folder)."""


class SourceUnreachable(SourceError):
    """Raised when the remote or the branch cannot be reached now; the engine records a
    ``SourceUnavailable`` event and polls again later."""

    retryable = True


class DefinitionError(GlamError):
    """An invalid file in the user's repository, located as precisely as possible."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        hint: str | None = None,
    ):
        where = file or ""
        if file and line is not None:
            where += f":{line}" + (f":{column}" if column is not None else "")
        super().__init__(f"{where}: {message}" if where else message, hint=hint)
        self.reason = message
        self.file = file
        self.line = line
        self.column = column


class AwsError(GlamError):
    """Raised by the AWS adapters for a failed call, translated from botocore at the
    boundary; ``code``, ``operation`` and ``status`` say which and how."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "",
        operation: str = "",
        status: int | None = None,
        hint: str | None = None,
        retryable: bool | None = None,
    ):
        super().__init__(message, hint=hint, retryable=retryable)
        self.code = code
        self.operation = operation
        self.status = status


class AwsThrottled(AwsError):
    """Raised when AWS throttled the call (429 or a throttling code); repeat after a pause."""

    retryable = True
    retry_after: float | None = None  # seconds AWS asked us to wait (Retry-After), if it said


class AwsConflict(AwsError):
    """Raised on ResourceConflictException: an update is in progress; wait, then repeat."""

    retryable = True


class AwsNotFound(AwsError):
    """Raised when the resource does not exist (reads answer None instead)."""


class AwsInvalid(AwsError):
    """Raised when AWS, or glam's own check before the call, refuses the request as invalid."""


class AwsAmbiguous(AwsError):
    """Raised when a mutation may or may not have happened (a 5xx, a lost answer): read AWS
    before repeating it."""

    retryable = True


class LocalAwsError(GlamError):
    """Raised when the embedded AWS cannot start, or its extra is not installed."""
