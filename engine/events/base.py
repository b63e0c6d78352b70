"""What every event shares: the frozen model base, metadata, and the stream base classes.

Every event class derives from the base of the stream family it belongs to, so a fold that
cares about one family ignores the others in one ``case`` and ``assert_never`` still proves
the ``match`` exhaustive:

- :class:`RepoEvent`: the repository stream ``repo:<url>#<branch>`` (engine.events.repo),
  and the ``repositories`` stream of repositories added through the API
  (engine.events.registry);
- :class:`FunctionEvent`: a function stream ``fn:<account>:<region>:<name>``
  (engine.events.function);
- :class:`OpsEvent`: operator commands, issued on the ``ops`` stream and handed over to the
  stream each acts on (engine.events.operator, and ``OperatorRequested``).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class Frozen(BaseModel):
    """Base of every event and value stored in one: immutable, unknown fields refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class EventBase(Frozen):
    """An event's data. Subclasses add ``type: Literal["StableName"]`` and their fields.

    ``SCHEMA_VERSION`` grows when the stored shape changes; an upcaster registered in
    ``engine.events.catalog.UPCASTERS`` turns the older raw dict into the newer one before
    validation.
    """

    SCHEMA_VERSION: ClassVar[int] = 1


class RepoEvent(EventBase):
    """An event about a repository: what glam saw in Git and what it planned (a repository
    stream), or a repository added or removed (the ``repositories`` stream)."""


class FunctionEvent(EventBase):
    """An event of a function stream: a deployment and every AWS fact about the function."""


class OpsEvent(EventBase):
    """An operator's command: as issued, or as handed over to the stream it acts on."""


class Metadata(Frozen):
    """Who and what caused an event. ``event_id`` is made by the caller so a retried append is
    idempotent; ``commit`` and ``deployment_id`` correlate events across streams."""

    event_id: str
    actor: str = "engine"
    commit: str | None = None
    deployment_id: str | None = None
    causation_id: str | None = None
