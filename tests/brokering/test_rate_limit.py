"""The credential rate limit: at most IAMPORTAL_CREDENTIAL_RATE_LIMIT credentials
per user a minute, exactly, however many requests arrive at once."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection, connections
from django.utils import timezone

from brokering import services
from brokering.models import CredentialIssuance, CredentialRateWindow
from tests.factories import Org, make_user

pytestmark = pytest.mark.django_db


def issue(user: User, org: Org) -> services.IssuedCredentials:
    return services.credentials_issue(
        user=user, role=org.roles["prod/payments-api"], kind="cli", source_ip="10.0.0.9"
    )


def outcomes(user: User) -> list[str]:
    rows = CredentialIssuance.objects.filter(user=user).order_by("id")
    return list(rows.values_list("outcome", flat=True))


def test_the_limit_refuses_with_the_seconds_until_the_next_window(
    requester: User, org: Org, settings: Any
) -> None:
    settings.IAMPORTAL_CREDENTIAL_RATE_LIMIT = 2
    issue(requester, org)
    issue(requester, org)
    with pytest.raises(services.RateLimited) as refused:
        issue(requester, org)
    assert 1 <= refused.value.retry_after <= 60
    assert outcomes(requester) == ["issued", "issued", "rate_limited"]


def test_a_new_minute_gives_the_user_their_full_allowance_again(
    requester: User, org: Org, settings: Any
) -> None:
    settings.IAMPORTAL_CREDENTIAL_RATE_LIMIT = 1
    issue(requester, org)
    with pytest.raises(services.RateLimited):
        issue(requester, org)
    CredentialRateWindow.objects.filter(user=requester).update(
        window_start=timezone.now() - timedelta(seconds=61)
    )
    issue(requester, org)
    assert outcomes(requester) == ["issued", "rate_limited", "issued"]


def test_the_request_that_opens_a_new_window_counts_in_it(
    requester: User, org: Org, settings: Any
) -> None:
    settings.IAMPORTAL_CREDENTIAL_RATE_LIMIT = 2
    issue(requester, org)
    issue(requester, org)
    CredentialRateWindow.objects.filter(user=requester).update(
        window_start=timezone.now() - timedelta(seconds=61)
    )
    issue(requester, org)
    issue(requester, org)
    with pytest.raises(services.RateLimited):
        issue(requester, org)
    assert outcomes(requester) == ["issued"] * 4 + ["rate_limited"]


def test_one_users_requests_do_not_count_against_another(
    requester: User, org: Org, settings: Any
) -> None:
    settings.IAMPORTAL_CREDENTIAL_RATE_LIMIT = 1
    issue(requester, org)
    colleague = make_user("carol")
    with pytest.raises(services.RateLimited):
        issue(requester, org)
    assert services._rate_slot_take(colleague) == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs concurrent writers (PostgreSQL)"
)
@pytest.mark.parametrize(
    ("window", "issued"),
    [
        # the user's first requests: the window is created by one of them
        (None, 7),
        # a window that lapsed full: the first request opens a new one
        ((timedelta(seconds=-61), 7), 7),
        # an open window with two slots taken: only what is left
        ((timedelta(0), 2), 5),
    ],
    ids=["no-window", "lapsed-window", "open-window"],
)
def test_twenty_concurrent_requests_get_exactly_what_the_limit_leaves(
    requester: User, org: Org, settings: Any, window: tuple[timedelta, int] | None, issued: int
) -> None:
    settings.IAMPORTAL_CREDENTIAL_RATE_LIMIT = 7
    if window is not None:
        age, count = window
        CredentialRateWindow.objects.create(
            user=requester, window_start=timezone.now() + age, count=count
        )
    assert concurrent_outcomes(requester, org) == (issued, 20 - issued)
    assert outcomes(requester).count("issued") == issued


def concurrent_outcomes(requester: User, org: Org) -> tuple[int, int]:
    """(issued, refused) of twenty credential requests of `requester` at once."""
    barrier = threading.Barrier(20)
    results: list[object] = []
    lock = threading.Lock()

    def take() -> None:
        try:
            barrier.wait()
            try:
                result: object = issue(requester, org)
            except services.RateLimited as exc:
                result = exc
            with lock:
                results.append(result)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=take) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 20
    issued = [r for r in results if isinstance(r, services.IssuedCredentials)]
    refused = [r for r in results if isinstance(r, services.RateLimited)]
    assert all(1 <= r.retry_after <= 60 for r in refused)
    return len(issued), len(refused)
