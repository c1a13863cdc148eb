"""What ingest returns for each message: the committed rows, models validated on demand."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from pydantic import BaseModel

from gateway import models

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What ingest stored (or found stored) for one inbound message.

    ``message``, ``ticket`` and ``contact`` are validated models built from the stored rows on
    first use: most callers only need the ids an ack carries, and validating three models per
    message was a tenth of the pipeline's CPU. The rows are as they were committed; ingest
    does not touch them after it returns.
    """

    message_row: Mapping[str, Any] = field(repr=False)
    ticket_row: Mapping[str, Any] = field(repr=False)
    contact_row: Mapping[str, Any] = field(repr=False)
    duplicate: bool = False
    new_ticket: bool = False
    reopened: bool = False
    routed: bool = False
    """Ingest found nothing for the router to do (people have the ticket, or no question)."""
    notified: bool = False
    """Ingest wrote outbox rows for this message (a notice, a rating's alert)."""
    _models: dict[str, BaseModel] = field(default_factory=dict, repr=False, compare=False)

    @property
    def message_id(self) -> int:
        return int(self.message_row["id"])

    @property
    def ticket_id(self) -> int:
        return int(self.ticket_row["id"])

    @property
    def ticket_number(self) -> str:
        return str(self.ticket_row["number"])

    @property
    def message(self) -> models.TicketMessage:
        return self._model("message", models.TicketMessage, self.message_row)

    @property
    def ticket(self) -> models.Ticket:
        return self._model("ticket", models.Ticket, self.ticket_row)

    @property
    def contact(self) -> models.Contact:
        return self._model("contact", models.Contact, self.contact_row)

    def _model(self, name: str, cls: type[M], row: Mapping[str, Any]) -> M:
        built = self._models.get(name)
        if built is None:
            built = self._models[name] = model(cls, row)
        return cast(M, built)


def model(cls: type[M], row: Mapping[str, Any]) -> M:
    """``cls`` validated from the row's columns of the same names."""
    return cls.model_validate({name: row[name] for name in cls.model_fields})
