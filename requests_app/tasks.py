"""django-q2 entry points for permission requests. Tasks take ids and call one service;
services queue them through `requests_app.enqueue`, by these dotted paths."""

from __future__ import annotations

from typing import Any

from iamportal import jobs
from requests_app import notifications, services


@jobs.tracked("requests_app.apply")
def policy_request_apply_task(request_id: int) -> None:
    services.policy_request_apply(request_id=request_id)


@jobs.tracked("requests_app.expire")
def policy_request_expire_task(request_id: int) -> None:
    services.policy_request_expire(request_id=request_id)


@jobs.tracked("requests_app.notify")
def notification_send_task(notification_id: int) -> int:
    return notifications.notification_send(notification_id=notification_id)


@jobs.tracked("requests_app.notify")
def request_notify_task(
    kind: str, request_id: int, actor_id: int | None = None, comment_id: int | None = None
) -> int:
    """Tasks queued before the outbox existed still name this entry point."""
    return notifications.request_notify(
        request_id=request_id, kind=kind, actor_id=actor_id, comment_id=comment_id
    )


@jobs.tracked("requests_app.work_sweep")
def requests_work_sweep_task() -> dict[str, Any]:
    """Every minute: hand applies, expiries and emails whose task was lost, or
    whose worker died, to the broker again."""
    return services.requests_work_recover()


@jobs.tracked("requests_app.expiry_sweep")
def policy_requests_expiry_sweep_task() -> int:
    """Every few minutes: remind requesters a day before their access ends, and
    take away access that has expired."""
    notifications.expiry_reminders_send()
    due = services.policy_requests_due_to_expire()
    for request_id in due:
        services.policy_request_expire(request_id=request_id)
    return len(due)
