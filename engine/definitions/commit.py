"""One commit's desired states: every function prefix of its tree, rendered and validated.

Pure: the files come in through ``RepoFiles`` and a file list. Rendering is the expensive part,
so the caller may name which prefixes need it (those a commit changed, and those the log does
not know yet); the others are listed in ``prefixes`` only, which is enough to plan "nothing".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.definitions.desired import build_desired, group_files, split_path
from engine.definitions.inputs import RepoFiles
from engine.errors import DefinitionError
from engine.events.desired import DesiredFunction
from engine.events.repo import FileChange


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why one function prefix of a commit is invalid."""

    prefix: str
    file: str
    reason: str
    line: int | None = None
    column: int | None = None
    hint: str | None = None

    def one_line(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}" + (f":{self.column}" if self.column is not None else "")
        return f"{where}: {self.reason}" + (f" — {self.hint}" if self.hint else "")


@dataclass(frozen=True, slots=True)
class CommitState:
    """What one commit asks for.

    ``prefixes`` holds every prefix with a ``_lambdadef.json`` in the tree; ``desired`` and
    ``rejected`` cover the prefixes that were rendered. ``changes`` are the Lambda files changed
    since the base commit, grouped by prefix; ``None`` means there is no base (first run or
    rewritten history), so every prefix counts as changed.
    """

    sha: str
    prefixes: frozenset[str]
    desired: Mapping[str, DesiredFunction]
    rejected: Mapping[str, Rejection]
    changes: Mapping[str, tuple[FileChange, ...]] | None
    rendered: Mapping[str, str] = field(default_factory=dict)

    def changes_of(self, prefix: str) -> tuple[FileChange, ...]:
        if self.changes is None:
            return ()
        return self.changes.get(prefix, ())


def changes_by_prefix(changes: Iterable[FileChange]) -> dict[str, tuple[FileChange, ...]]:
    out: dict[str, list[FileChange]] = {}
    for change in changes:
        split = split_path(change.path)
        if split is not None:
            out.setdefault(split[0], []).append(change)
    return {prefix: tuple(items) for prefix, items in out.items()}


def build_commit_state(
    sha: str,
    lambda_files: Iterable[str],
    repo: RepoFiles,
    *,
    changes: Iterable[FileChange] | None,
    select: Callable[[str], bool] | None = None,
    keep_rendered: bool = False,
) -> CommitState:
    """Render and validate every prefix the changes touch plus those ``select`` picks (all
    prefixes when ``select`` is ``None``). A prefix whose files are invalid is rejected alone;
    the others are unaffected."""
    groups = group_files(lambda_files)
    by_prefix = changes_by_prefix(changes) if changes is not None else None
    ref_cache: dict[tuple[str, str], dict[str, Any]] = {}
    desired: dict[str, DesiredFunction] = {}
    rejected: dict[str, Rejection] = {}
    rendered: dict[str, str] = {}
    prefixes = frozenset(p for p, files in groups.items() if "def" in files)
    for prefix in sorted(prefixes):
        changed = by_prefix is None or prefix in by_prefix
        if select is not None and not changed and not select(prefix):
            continue
        files = groups[prefix]
        try:
            desired[prefix] = build_desired(
                prefix,
                files,
                repo,
                ref_cache=ref_cache,
                rendered=rendered if keep_rendered else None,
            )
        except DefinitionError as exc:
            rejected[prefix] = Rejection(
                prefix=prefix,
                file=exc.file or files["def"],
                reason=exc.reason,
                line=exc.line,
                column=exc.column,
                hint=exc.hint,
            )
    return CommitState(
        sha=sha,
        prefixes=prefixes,
        desired=desired,
        rejected=rejected,
        changes=by_prefix,
        rendered=rendered,
    )
