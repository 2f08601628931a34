"""django-q2 entry points for permission requests. Tasks take ids and call one service."""

from __future__ import annotations

from django_q.tasks import async_task

from iamportal import jobs
from requests_app import services


def enqueue_policy_request_apply(request_id: int) -> None:
    async_task("requests_app.tasks.policy_request_apply_task", request_id, group="apply")


@jobs.tracked("requests_app.apply")
def policy_request_apply_task(request_id: int) -> None:
    services.policy_request_apply(request_id=request_id)
