"""The one error tree of glam.

Every failure that crosses a module boundary is a ``GlamError``. Adapters translate
botocore, aiosqlite, sqlite3 and dulwich errors into it at the boundary, so the core and the
CLI never see a third-party exception. Each error says whether repeating the same call could
succeed (``retryable``); the CLI catches the root once and prints ``hint`` as the one line that
says what to do.

    GlamError
    ├── UsageError                 bad flags or arguments (CLI exit 2)
    ├── ConfigError                a setting or environment that cannot work
    ├── StoreError                 the event log
    │   ├── ConcurrencyConflict    expected stream version is stale (retryable after re-read)
    │   ├── StoreCorrupt           integrity check, hash chain or file format failed
    │   ├── StoreTooNew            file written by a newer glam
    │   ├── StoreLocked            another engine owns the database
    │   └── EventDecodeError       unknown event type or schema version
    ├── SourceError                the Git repository
    │   └── SourceUnavailable      remote or branch cannot be reached (retryable)
    ├── DefinitionError            a file in the user's repository is invalid
    ├── AwsError                   an AWS call failed
    │   ├── AwsThrottled           429 / throttling (retryable)
    │   ├── AwsConflict            ResourceConflictException: update in progress (retryable)
    │   ├── AwsNotFound            the resource does not exist
    │   ├── AwsInvalid             AWS refused the request as invalid (not retryable)
    │   └── AwsAmbiguous           a mutation whose outcome is unknown (read before repeating)
    └── LocalAwsError              the embedded AWS could not start or is not installed
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
    exit_code = 2


class ConfigError(GlamError):
    pass


class StoreError(GlamError):
    pass


class ConcurrencyConflict(StoreError):
    retryable = True


class StoreCorrupt(StoreError):
    pass


class StoreTooNew(StoreError):
    pass


class StoreLocked(StoreError):
    pass


class EventDecodeError(StoreError):
    pass


class SourceError(GlamError):
    pass


class SourceUnavailable(SourceError):
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
    retryable = True
    retry_after: float | None = None  # seconds AWS asked us to wait (Retry-After), if it said


class AwsConflict(AwsError):
    retryable = True


class AwsNotFound(AwsError):
    pass


class AwsInvalid(AwsError):
    pass


class AwsAmbiguous(AwsError):
    retryable = True


class LocalAwsError(GlamError):
    pass
