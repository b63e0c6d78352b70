"""The event log: the SQLite store (``engine.store.sqlite``), the in-memory store
(``engine.store.memory``), the shared row format and hash chain (``engine.store.records``) and
the engine lock (``engine.store.lock``)."""
