"""Drift: AWS compared with what the log says glam deployed, field by field.

    engine.drift.compare   pure: what was deployed (``Expected``) against what AWS serves
                           (``LiveFunction``), as ``Difference``s (field path, desired, live),
                           secrets masked
    engine.drift.read      the live side, read through the ports (LambdaApi, SourcesApi)
    engine.drift.watch     pure: one function stream folded for the sweep (``Watched``), and
                           the events a sweep's findings make (DriftDetected, DriftResolved,
                           a healing DeploymentRequested)
    engine.drift.recorded  pure: the drift the log holds open, for ``glam status``, the server

The engine sweeps on a schedule (engine.runtime.drift); ``glam drift`` reads AWS on demand
(engine.cli.drift). docs/drift.md says what is compared, how often, and the policies.
"""
