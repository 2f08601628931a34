"""Hand work to the broker. Services call these; the tasks they name (by dotted
path, as queued rows and schedules store them) live in `brokering.tasks`, which
imports the services: this module imports neither, so there is no circle."""

from __future__ import annotations

from django_q.tasks import async_task


def session_revocation_apply(revocation_id: int) -> None:
    async_task(
        "brokering.tasks.session_revocation_apply_task", revocation_id, group="revoke-sessions"
    )
