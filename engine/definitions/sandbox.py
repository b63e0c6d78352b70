"""A Jinja sandbox that keeps a template's time, size and depth within limits.

Jinja's own sandbox stops a template from reaching Python internals; it does not stop one from
building a gigabyte string, recursing until the interpreter gives up, or looping for hours. This
environment adds cheap checks at every place a template can make work or memory grow:

    loops          every ``{% for %}`` iterates through a counter that checks the deadline
    range()        at most 100,000 items, and counted like a loop
    * + ** %       the size of the result is known before it is made (``'x' * 10**10``)
    ~ (concat)     the parts are measured before they are joined
    calls          macros and methods: depth counted, deadline checked, result measured;
                   ``center``, ``ljust``, ``replace``, ``join``, ``format`` checked beforehand
    filters        the same, for ``center``, ``indent``, ``replace``, ``wordwrap``, ``format``,
                   ``join``, ``tojson`` and every int argument
    output         every chunk and every ``{{ }}`` value counted as it is produced
    include        there is no loader: ``include``, ``import`` and ``extends`` are errors

The optimizer is off, so nothing is evaluated at compile time outside these checks. A check that
fails raises ``LimitExceeded`` (a ``TemplateError``) naming the limit. These checks are cheap
and precise but not a proof: one call into C (a regular expression, a sort) still runs to its
end. The hard boundary is the render worker process (``engine.git.render``), which adds an
address space limit and a timer that interrupts any Python code.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from jinja2 import StrictUndefined, TemplateNotFound, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import TemplateRuntimeError
from jinja2.loaders import BaseLoader
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from engine.definitions.limits import RenderLimits, seconds, size

MAX_RANGE = 100_000  # items in one range(), as Jinja's own sandbox allows
BUILT_FACTOR = 64  # strings and lists built in one file, in all: 64 times the output limit
MAX_INT_BITS = 4096  # integers a template may compute (10**1000 has 3,322 bits)
_TICK = 256  # deadline checked once per this many loop items


class LimitExceeded(TemplateRuntimeError):
    """A template went past one of the render limits; ``limit`` names which."""

    def __init__(self, message: str, limit: str):
        super().__init__(message)
        self.limit = limit


class Budget:
    """The limits of one render in progress: a deadline, a size cap, a call depth."""

    __slots__ = (
        "built",
        "count",
        "deadline",
        "depth",
        "file_seconds",
        "max_built",
        "max_chars",
        "max_depth",
        "output",
    )

    def __init__(self, limits: RenderLimits, *, now: float | None = None):
        start = time.monotonic() if now is None else now
        self.file_seconds = limits.file_seconds
        self.deadline = start + limits.file_seconds
        self.max_chars = limits.output_bytes
        self.max_depth = limits.call_depth
        self.depth = 0
        self.count = 0
        self.output = 0
        self.built = 0
        self.max_built = limits.output_bytes * BUILT_FACTOR

    def tick(self) -> None:
        self.count += 1
        if self.count % _TICK == 0:
            self.check_time()

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise LimitExceeded(
                "rendering took longer than the time limit of "
                f"{seconds(self.file_seconds)} per file",
                "file_seconds",
            )

    def check_size(self, n: int, what: str = "a value") -> None:
        if n > self.max_chars:
            raise LimitExceeded(
                f"{what} of {n:,} characters is over the output limit of {size(self.max_chars)}",
                "output_bytes",
            )

    def add_built(self, n: int) -> None:
        """Count ``n`` characters (or items) a template made. Each value is checked on its own;
        this bounds them all together, so that many values just under the limit (a map over
        a long list) cannot add up to gigabytes."""
        self.built += n
        if self.built > self.max_built:
            raise LimitExceeded(
                f"the template built more than {size(self.max_built)} of strings and lists "
                "in all (the limit is 64 times the output limit)",
                "output_bytes",
            )

    def add_output(self, n: int) -> None:
        self.output += n
        if self.output > self.max_chars:
            raise LimitExceeded(
                f"the rendered file is over the output limit of {size(self.max_chars)}",
                "output_bytes",
            )
        self.tick()


_local = threading.local()


def current() -> Budget:
    """The budget of the render running in this thread."""
    budget: Budget | None = getattr(_local, "budget", None)
    if budget is None:  # rendering outside ``use_budget`` is a bug in glam, not the template
        raise RuntimeError("no render budget is active")
    return budget


@contextmanager
def using(budget: Budget) -> Iterator[Budget]:
    """Make ``budget`` the current one for this thread while the block runs."""
    previous = getattr(_local, "budget", None)
    _local.budget = budget
    try:
        yield budget
    finally:
        _local.budget = previous


def measure(value: Any, limit: int) -> int:
    """The characters ``value`` stands for as text (strings' lengths, collections' items),
    counted only until ``limit`` is passed: cost is bounded by the limit, not the value."""
    total = 0
    stack: list[Any] = [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item) + 2
        elif isinstance(item, Mapping):
            total += 2 + len(item)
            for key, val in item.items():
                stack.append(key)
                stack.append(val)
        elif isinstance(item, list | tuple):
            total += 2 + len(item)
            stack.extend(item)
        elif isinstance(item, int) and not isinstance(item, bool):
            total += item.bit_length() // 3 + 1
        else:
            total += 8
    return total


def _length(value: Any) -> int | None:
    if isinstance(value, str | list | tuple | dict):
        return len(value)
    return None


def _check_result(value: Any) -> Any:
    n = _length(value)
    if n is not None:
        budget = current()
        budget.check_size(n)
        budget.add_built(n)
    elif isinstance(value, int) and not isinstance(value, bool):
        _check_int(value)
    return value


def _check_int(value: int) -> None:
    _check_bits(value.bit_length())


def _check_bits(bits: int) -> None:
    if bits > MAX_INT_BITS:
        raise LimitExceeded(
            f"an integer of {bits:,} bits or more is over the limit of {MAX_INT_BITS:,} bits",
            "output_bytes",
        )


def _check_width_args(args: Iterable[Any]) -> None:
    """Any int argument larger than the size limit would make a result at least that large."""
    budget = current()
    for arg in args:
        if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > budget.max_chars:
            budget.check_size(abs(arg), "a width or count")


_PRINTF = re.compile(r"%(?:\([^)]*\))?[-+ #0]*(\*|\d+)?(?:\.(\*|\d+))?")
_BRACE_WIDTH = re.compile(r"\{[^{}]*:[^{}]*?(\d+)[^{}]*\}")


def _check_format(fmt: Any, args: Sequence[Any]) -> None:
    """Widths and precisions inside a printf or ``str.format`` format string."""
    if not isinstance(fmt, str):
        return
    budget = current()
    budget.check_size(len(fmt), "a format string")
    for match in _PRINTF.finditer(fmt):
        for part in match.groups():
            if part and part.isdigit():
                budget.check_size(int(part), "a format width")
    for match in _BRACE_WIDTH.finditer(fmt):
        budget.check_size(int(match.group(1)), "a format width")
    _check_width_args(args)


def _check_replace(s: Any, old: Any, new: Any, count: Any = -1) -> None:
    if not (isinstance(s, str) and isinstance(old, str) and isinstance(new, str)):
        return
    grow = len(new) - len(old)
    if grow <= 0:
        return
    hits = len(s) + 1 if not old else s.count(old)
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    current().check_size(len(s) + hits * grow)


def _check_join(sep: Any, items: Any) -> list[Any]:
    """``items`` as a list, once their joined size is known to fit."""
    listed = list(items)
    budget = current()
    total = len(sep) * len(listed) if isinstance(sep, str) else 0
    budget.check_size(total, "a join")
    for item in listed:
        total += len(item) if isinstance(item, str) else measure(item, budget.max_chars)
        budget.check_size(total, "a join")
    return listed


def _check_lines(s: Any, per_line: int) -> None:
    if isinstance(s, str):
        current().check_size(len(s) + (s.count("\n") + 1) * per_line)


# -- binary operators ------------------------------------------------------------------------


def _mul(left: Any, right: Any) -> Any:
    budget = current()
    for seq, n in ((left, right), (right, left)):
        if isinstance(seq, str | list | tuple) and isinstance(n, int):
            budget.check_size(len(seq) * max(n, 0))
    if isinstance(left, int) and isinstance(right, int):
        _check_bits(left.bit_length() + right.bit_length() - 1)
    return _check_result(left * right)


def _pow(left: Any, right: Any) -> Any:
    if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
        _check_bits(min(right, MAX_INT_BITS + 1) * (left.bit_length() - 1) + 1)
    return left**right


def _add(left: Any, right: Any) -> Any:
    if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
        current().check_size(len(left) + len(right))
    return _check_result(left + right)


def _mod(left: Any, right: Any) -> Any:
    if isinstance(left, str):
        args = right if isinstance(right, tuple) else (right,)
        _check_format(left, args)
        return _check_result(left % right)
    return left % right


# -- filters ---------------------------------------------------------------------------------


def _filter_check(name: str, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Checks before a filter runs; may return a replacement ``value`` (a materialized list)."""
    _check_width_args(args)
    _check_width_args(kwargs.values())
    budget = current()
    if name == "indent":
        width = args[0] if args else kwargs.get("width", 4)
        per_line = len(width) if isinstance(width, str) else width
        if isinstance(per_line, int):
            _check_lines(value, max(per_line, 0))
    elif name == "replace":
        _check_replace(value, *args[:3])
    elif name == "wordwrap" and isinstance(value, str):
        width = args[0] if args else kwargs.get("width", 79)
        wrap = args[2] if len(args) > 2 else kwargs.get("wrapstring") or "\n"
        if isinstance(width, int) and isinstance(wrap, str):
            budget.check_size(len(value) + (len(value) // max(width, 1) + 1) * len(wrap))
    elif name == "format":
        _check_format(value, args)
    elif name == "join" and not isinstance(value, str):
        sep = args[0] if args else kwargs.get("d", "")
        return _check_join(sep, value)
    elif name == "tojson":
        budget.check_size(measure(value, budget.max_chars), "a value")
    elif name in ("center", "truncate") and args and isinstance(args[0], int):
        budget.check_size(args[0])
    return value


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    skip = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        budget = current()
        budget.tick()
        if len(args) > skip:
            value = _filter_check(name, args[skip], args[skip + 1 :], kwargs)
            args = (*args[:skip], value, *args[skip + 1 :])
        return _check_result(func(*args, **kwargs))

    return wrapper


def _ticking(iterable: Any) -> Iterator[Any]:
    """Every loop goes through this: the deadline is checked as it iterates."""
    budget = current()
    for item in iterable:
        budget.tick()
        yield item


class BoundedRange(Sequence[int]):
    """``range()`` for templates: at most ``MAX_RANGE`` items, counted as it is iterated."""

    __slots__ = ("_range",)

    def __init__(self, *args: int):
        rng = range(*args)
        step = rng.step
        length = max(0, (rng.stop - rng.start + step - (1 if step > 0 else -1)) // step)
        if length > MAX_RANGE:
            raise LimitExceeded(
                f"range() of {length:,} items is over the limit of {MAX_RANGE:,}", "range"
            )
        self._range = rng

    def __len__(self) -> int:
        return len(self._range)

    def __getitem__(self, index: Any) -> Any:
        return self._range[index]

    def __iter__(self) -> Iterator[int]:
        return _ticking(self._range)

    def __reversed__(self) -> Iterator[int]:
        return _ticking(reversed(self._range))

    def __contains__(self, value: object) -> bool:
        return value in self._range

    def __repr__(self) -> str:
        return repr(self._range)


# -- the environment -------------------------------------------------------------------------


class _NoLoader(BaseLoader):
    def get_source(self, environment: Any, template: str) -> Any:
        raise TemplateNotFound(
            f"{template} (a definition cannot include, import or extend other files)"
        )


class _CheckedConcat(CodeGenerator):
    """``a ~ b``: measured by the environment before it is joined."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.checked_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


_STR_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with the checks of this module."""

    code_generator_class = _CheckedConcat
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **kwargs: Any):
        super().__init__(
            undefined=StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
            optimized=False,  # no evaluation at compile time, outside the checks
            loader=_NoLoader(),
            **kwargs,
        )
        self.binop_table = {**self.binop_table, "*": _mul, "**": _pow, "+": _add, "%": _mod}
        # Nothing that reads outside the values: keep pure helpers only.
        for name in ("lipsum", "cycler", "joiner"):
            self.globals.pop(name, None)
        self.globals["range"] = BoundedRange
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}
        self.filters["_glam_loop"] = _ticking

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Filter(
                loop.iter, "_glam_loop", [], [], None, None, lineno=loop.iter.lineno
            )
        return tree

    def checked_concat(self, items: tuple[Any, ...]) -> str:
        parts = [str(item) for item in items]
        budget = current()
        budget.tick()
        total = sum(len(p) for p in parts)
        budget.check_size(total)
        budget.add_built(total)
        return "".join(parts)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget = current()
        budget.check_time()
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            name = getattr(__obj, "__name__", "")
            if name in _STR_WIDTH_METHODS:
                _check_width_args(args)
                if name == "expandtabs":
                    tab = args[0] if args else kwargs.get("tabsize", 8)
                    if isinstance(tab, int):
                        budget.check_size(len(owner) + owner.count("\t") * max(tab, 0))
            elif name == "replace":
                _check_replace(owner, *args[:3])
            elif name == "join" and args:
                args = (_check_join(owner, args[0]), *args[1:])
        wrapped = getattr(__obj, "__wrapped__", None)
        if getattr(wrapped, "__name__", "") in ("format", "format_map"):
            _check_format(getattr(wrapped, "__self__", None), args)
            _check_width_args(kwargs.values())
        budget.depth += 1
        try:
            if budget.depth > budget.max_depth:
                raise LimitExceeded(
                    f"calls nested deeper than the call depth limit of {budget.max_depth}"
                    " (a macro that calls itself?)",
                    "call_depth",
                )
            result = super().call(__context, __obj, *args, **kwargs)
        finally:
            budget.depth -= 1
        return _check_result(result)


def make_environment(finalize: Callable[[Any], Any]) -> BoundedEnvironment:
    return BoundedEnvironment(finalize=finalize)
