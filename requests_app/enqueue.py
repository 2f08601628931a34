"""Hand work to the broker. Services call these; the tasks they name (by dotted
path, as queued rows and schedules store them) live in `requests_app.tasks`,
which imports the services: this module imports neither, so there is no circle."""

from __future__ import annotations

from django_q.tasks import async_task


def policy_request_apply(request_id: int) -> None:
    async_task("requests_app.tasks.policy_request_apply_task", request_id, group="apply")


def policy_request_expire(request_id: int) -> None:
    async_task("requests_app.tasks.policy_request_expire_task", request_id, group="expire")


def notification_send(notification_id: int) -> None:
    async_task("requests_app.tasks.notification_send_task", notification_id, group="notify")
