"""Reading ``glam.toml``: the standard library's ``tomllib``, then the models of
``engine.config.model``, with every mistake reported at once, each on its own line, located
(file and line) and saying what to write instead ("did you mean ...").

    config = load_config(Path("glam.toml"))      # ConfigFileError listing every mistake

``tomllib`` keeps no positions, so the lines come from a light scan of the text
(``LineIndex``): table headers and ``key =`` lines, which is where a mistake is written. A
TOML syntax error stops reading at once (nothing after it can be trusted); it is the only
case with a single line.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from engine.config.model import (
    REGION,
    AccountSettings,
    EngineSettings,
    GlamConfig,
    RepositorySettings,
    ServerSection,
    TracesSection,
)
from engine.errors import ConfigFileError
from engine.redact import repository_id

# The tables of the file, the model of each, and how the file writes it.
_TABLES: dict[str, tuple[type[BaseModel], str]] = {
    "engine": (EngineSettings, "[engine]"),
    "repository": (RepositorySettings, "[[repository]]"),
    "account": (AccountSettings, "[[account]]"),
    "server": (ServerSection, "[server]"),
    "traces": (TracesSection, "[traces]"),
}
_ARRAYS = frozenset({"repository", "account"})
_HEADER_ARRAY = re.compile(r"^\s*\[\[\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]")
_HEADER = re.compile(r"^\s*\[\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]")
_PART = r"(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')"
_KEY = re.compile(rf"^\s*({_PART}(?:\s*\.\s*{_PART})*)\s*=")
_TOML_AT = re.compile(r"\(at line (\d+), column (\d+)\)")

Loc = tuple[str | int, ...]


class LineIndex:
    """The line each table and key of a TOML text starts on, by path: ``("engine", "db")``,
    ``("repository", 1, "branches")`` (array tables counted from 0)."""

    def __init__(self, text: str) -> None:
        self.lines: dict[Loc, int] = {}
        counts: dict[str, int] = {}
        table: Loc = ()
        for number, line in enumerate(text.splitlines(), start=1):
            if match := _HEADER_ARRAY.match(line):
                name = _unquote(match[1])
                counts[name] = counts.get(name, -1) + 1
                table = (*name.split("."), counts[name])
                self.lines.setdefault(table, number)
                self.lines.setdefault(table[:-1], number)
            elif match := _HEADER.match(line):
                table = tuple(_unquote(p) for p in match[1].split("."))
                self.lines.setdefault(table, number)
            elif match := _KEY.match(line):
                keys = tuple(_unquote(p) for p in match[1].split("."))
                self.lines.setdefault((*table, *keys), number)

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        """The line of ``loc``, or of the nearest enclosing table or key that has one."""
        path = tuple(loc)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None


def _unquote(part: str) -> str:
    part = part.strip()
    if len(part) >= 2 and part[0] == part[-1] and part[0] in "\"'":
        return part[1:-1]
    return part


def load_config(path: Path) -> GlamConfig:
    """The configuration in ``path``; ``ConfigFileError`` listing every mistake in it.
    Relative paths in it (``db``, ``data_dir``, a repository's ``path``) are relative to the
    file's folder, and made absolute: a repository's path is its identity, which must not
    depend on the folder the engine was started from."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigFileError(str(path), [f"{path}: cannot read it: {reason}"]) from None
    return parse_config(text, path)


def parse_config(text: str, path: Path) -> GlamConfig:
    """The configuration ``text`` (read from ``path``); see ``load_config``."""
    name = str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        where = _TOML_AT.search(message)
        line = f":{where[1]}" if where else ""
        message = _TOML_AT.sub("", message).strip()
        raise ConfigFileError(name, [f"{name}{line}: not valid TOML: {message}"]) from None
    index = LineIndex(text)
    problems: list[tuple[int, str]] = []

    def report(loc: Loc, message: str, *, label_loc: Loc | None = None) -> None:
        line = index.line_of(loc)
        where = f"{name}:{line}" if line is not None else name
        label = _label(loc if label_loc is None else label_loc)
        problems.append((line or 0, f"{where}: {label}{message}"))

    config: GlamConfig | None = None
    try:
        config = GlamConfig.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            loc = tuple(error["loc"])
            # An unknown key is named by the message itself ("'branchs' is not a setting").
            unknown = error["type"] == "extra_forbidden"
            report(loc, _message(error, data), label_loc=loc[:-1] if unknown else None)
    for loc, message in _cross_checks(data, index):
        report(loc, message)
    if problems or config is None:
        raise ConfigFileError(name, [text for _, text in sorted(problems, key=lambda p: p[0])])
    return _resolved(config, path.parent.resolve())


def _label(loc: Loc) -> str:
    """``repository #2: branches: `` for ``("repository", 1, "branches")``."""
    parts: list[str] = []
    rest = list(loc)
    if rest and rest[0] in _ARRAYS and len(rest) > 1 and isinstance(rest[1], int):
        parts.append(f"{rest[0]} #{rest[1] + 1}")
        rest = rest[2:]
    elif rest and rest[0] in _TABLES:
        parts.append(f"[{rest[0]}]" if rest[0] not in _ARRAYS else str(rest[0]))
        rest = rest[1:]
    field = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in rest).replace(".[", "[")
    if field:
        parts.append(field)
    return "".join(f"{p}: " for p in parts)


def _message(error: Mapping[str, Any], data: Mapping[str, Any]) -> str:
    """What a pydantic error means to someone editing the file."""
    loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        return _unknown_key(loc)
    if kind == "missing":
        return "is required"
    if kind in ("tuple_type", "list_type"):
        if len(loc) == 1 and loc[0] in _ARRAYS:
            return f"must be a list of tables: write [[{loc[0]}]], not [{loc[0]}]"
        return 'must be a list, e.g. ["main"]'
    if kind in ("model_type", "dict_type"):
        return "must be a table"
    if kind == "string_type":
        if loc[-1] == "id":
            return "must be a string: write the account id in quotes"
        return "must be a string (in quotes)"
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    return str(error["msg"]).replace("Input should be", "should be")


def _unknown_key(loc: Loc) -> str:
    key = str(loc[-1])
    if len(loc) == 1:
        known = list(_TABLES)
        near = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        write = ", ".join(_TABLES[k][1] for k in known)
        if near:
            return f"[{key}] is not a section of glam.toml — did you mean {_TABLES[near[0]][1]}?"
        return f"[{key}] is not a section of glam.toml (it has {write})"
    table = str(loc[0])
    model, written = _TABLES.get(table, (GlamConfig, "glam.toml"))
    known = list(model.model_fields)
    near = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    elsewhere = [
        where
        for name, (other, where) in _TABLES.items()
        if name != table and key in other.model_fields
    ]
    if near:
        hint = f"did you mean {near[0]!r}?"
    elif elsewhere:  # the right key in the wrong section
        hint = f"it is a setting of {' and '.join(elsewhere)}: move it there"
    else:
        hint = f"known keys: {', '.join(known)}"
    return f"{key!r} is not a setting of {written} — {hint}"


def _cross_checks(data: Mapping[str, Any], index: LineIndex) -> Iterable[tuple[Loc, str]]:
    """Mistakes no single entry shows: the same repository or account twice, a region name
    that looks like a typo of a known one. Tolerant of entries the models refuse."""
    seen: dict[str, int] = {}
    for number, repo in _entries(data, "repository"):
        location = repo.get("url", repo.get("path"))
        if not isinstance(location, str) or not location.strip():
            continue
        identity = repository_id(location)
        if identity in seen:
            first = seen[identity]
            line = index.line_of(("repository", first))
            at = f" (line {line})" if line else ""
            yield (
                ("repository", number),
                f"the same repository as repository #{first + 1}{at}: list all its "
                "branches in one entry",
            )
        else:
            seen[identity] = number
    accounts: dict[str, int] = {}
    for number, account in _entries(data, "account"):
        account_id = account.get("id")
        if isinstance(account_id, str) and account_id in accounts:
            first = accounts[account_id]
            line = index.line_of(("account", first))
            at = f" (line {line})" if line else ""
            yield (("account", number, "id"), f"account {account_id} is already listed{at}")
        elif isinstance(account_id, str):
            accounts[account_id] = number
        for i, region in enumerate(account.get("regions") or []):
            if problem := _region_typo(region):
                yield (("account", number, "regions", i), problem)
    engine = data.get("engine")
    if isinstance(engine, dict) and (problem := _region_typo(engine.get("region"))):
        yield (("engine", "region"), problem)


def _entries(data: Mapping[str, Any], table: str) -> Iterable[tuple[int, dict[str, Any]]]:
    entries = data.get(table)
    if isinstance(entries, list):
        yield from ((n, e) for n, e in enumerate(entries) if isinstance(e, dict))


def _region_typo(region: object) -> str | None:
    """Why ``region`` is a typo of a region botocore knows, or None. A well-formed name
    botocore does not know and that resembles none is accepted: AWS opens new regions."""
    if not isinstance(region, str) or not REGION.match(region) or region in _known_regions():
        return None
    near = difflib.get_close_matches(region, sorted(_known_regions()), n=1, cutoff=0.8)
    return f"{region!r} is not an AWS region — did you mean {near[0]!r}?" if near else None


@cache
def _known_regions() -> frozenset[str]:
    import botocore.session

    session = botocore.session.get_session()
    regions: set[str] = set()
    for partition in session.get_available_partitions():
        regions.update(session.get_available_regions("lambda", partition_name=partition))
    return frozenset(regions)


def _resolved(config: GlamConfig, folder: Path) -> GlamConfig:
    """``config`` with its relative paths made relative to ``folder``."""

    def under(value: Path | str | None) -> Path | None:
        if not isinstance(value, Path) or value.is_absolute():
            return None  # None, absolute, or a database URL
        return folder / value

    engine = config.engine
    changes = {k: v for k in ("db", "data_dir") if (v := under(getattr(engine, k))) is not None}
    repos = []
    for repo in config.repository:
        if repo.path is not None and not Path(repo.path).is_absolute():
            repo = repo.model_copy(update={"path": str(folder / repo.path)})
        repos.append(repo)
    return config.model_copy(
        update={"engine": engine.model_copy(update=changes), "repository": tuple(repos)}
    )
