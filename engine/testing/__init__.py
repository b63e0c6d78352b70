"""In-memory implementations of glam's ports, for tests (the product never imports this).

Each is a real implementation of its port, not a mock: it keeps state and refuses what the
real service refuses, so a test on it exercises the same rules as one on the real adapter.
They also carry what only tests need: fault steering (``FakeAws.fail_next``,
``apply_then_fail``), journals of the calls made, a clock that moves when told.

    FakeAws               LambdaApi and AlarmsApi       engine.testing.aws
    FakeSources           SourcesApi (the real reconciler over MemorySourcesBackend)
    FakeProvider          the engine's per-region AWS ports, all of the above
    ManualClock           Clock in pure virtual time, with ``advance`` and ``autojump``
    AutojumpClock         Clock for integration tests: real time that jumps to the next
                          deadline when every sleeper waits, moving the embedded AWS's too
    MemoryRepo            RepoSource: commits as trees in memory

With ``engine.store.memory.MemoryEventStore`` they run the whole engine in one process without
AWS, Git or SQLite::

    async with MemoryEventStore() as store:
        engine = Engine(config, store=store, source=MemoryRepo(), ports=FakeProvider(),
                        clock=ManualClock(autojump=True))
        async with engine:
            report = await engine.run(once=True)
"""

from engine.testing.aws import FakeAws
from engine.testing.clock import AutojumpClock, ManualClock
from engine.testing.provider import FakeProvider
from engine.testing.repo import MemoryRepo
from engine.testing.sources import FakeSources, MemorySourcesBackend

__all__ = [
    "AutojumpClock",
    "FakeAws",
    "FakeProvider",
    "FakeSources",
    "ManualClock",
    "MemoryRepo",
    "MemorySourcesBackend",
]
