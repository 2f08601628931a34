"""The account, inventory and search pages, as a signed-in engineer sees them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.shortcuts import resolve_url
from django.urls import reverse
from django.utils import timezone

from accounts.models import AwsAccount, CloudResource, IamRole, ManagedPolicy, SyncRun
from accounts.services import inventory_entries_refresh
from tests.factories import PASSWORD, client_for, make_role

TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}
READ_INVOICES = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::invoices/*"}
    ],
}


@pytest.fixture
def payments(db: None) -> AwsAccount:
    return AwsAccount.objects.create(account_id="111111111111", name="payments", environment="prod")


@pytest.fixture
def analytics(db: None) -> AwsAccount:
    return AwsAccount.objects.create(account_id="222222222222", name="analytics")


def make_resource(account: AwsAccount, name: str, type: str = "s3", **extra: Any) -> CloudResource:
    arns = {
        "s3": f"arn:aws:s3:::{name}",
        "sqs": f"arn:aws:sqs:us-east-1:{account.account_id}:{name}",
        "sns": f"arn:aws:sns:us-east-1:{account.account_id}:{name}",
    }
    resource = CloudResource.objects.create(
        account=account,
        arn=arns[type],
        name=name,
        type=type,
        region="" if type == "s3" else "us-east-1",
        content_hash="x",
        synced_at=timezone.now(),
        **extra,
    )
    # As a sync writes it: with its Policies page entry, which search reads.
    inventory_entries_refresh(account=account)
    return resource


def make_policy(account: AwsAccount, name: str, **extra: Any) -> ManagedPolicy:
    return ManagedPolicy.objects.create(
        account=account,
        arn=f"arn:aws:iam::{account.account_id}:policy/{name}",
        name=name,
        content_hash="x",
        synced_at=timezone.now(),
        **extra,
    )


def finished_run(account: AwsAccount, status: str, *, error: str = "", **extra: Any) -> SyncRun:
    now = timezone.now()
    run = SyncRun.objects.create(
        account=account,
        status=status,
        started_at=now - timedelta(seconds=42),
        finished_at=now,
        error=error,
        **extra,
    )
    account.latest_sync = run
    account.save(update_fields=["latest_sync"])
    return run


def listed_role_names(html: str, *names: str) -> set[str]:
    return {name for name in names if f"<strong>{name}</strong>" in html}


# --- access ---------------------------------------------------------------------


def _page_urls(account: AwsAccount) -> dict[str, str]:
    role = make_role(account, "ci-deployer")
    resource = make_resource(account, "invoices")
    policy = make_policy(account, "read-invoices")
    return {
        "dashboard": reverse("dashboard"),
        "account list": reverse("account_list"),
        "account": reverse("account_detail", args=[account.account_id]),
        "roles": reverse("role_list"),
        "role": reverse("role_detail", args=[account.account_id, role.name]),
        "resources": reverse("resource_list"),
        "resource": reverse("resource_detail", args=[resource.pk]),
        "policy": reverse("policy_detail", args=[policy.pk]),
    }


def test_it_sends_anonymous_visitors_of_every_page_to_the_login_page(
    anonymous: Any, payments: AwsAccount
) -> None:
    for page, url in _page_urls(payments).items():
        response = anonymous.get(url)
        assert response.status_code == 302, page
        assert response["Location"].startswith(reverse("login") + "?next="), page


def test_it_shows_every_page_to_a_signed_in_engineer(requester: User, payments: AwsAccount) -> None:
    client = client_for(requester)
    for page, url in _page_urls(payments).items():
        assert client.get(url).status_code == 200, page


def test_it_signs_in_through_the_login_page(anonymous: Any, requester: User) -> None:
    page = anonymous.get(reverse("login"))
    assert page.status_code == 200
    assert 'name="password"' in page.content.decode()

    wrong = anonymous.post(reverse("login"), {"username": "alice", "password": "nope"})
    assert "did not match" in wrong.content.decode()

    response = anonymous.post(reverse("login"), {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == resolve_url(settings.LOGIN_REDIRECT_URL)


def test_it_offers_logout_as_a_form_post_and_admin_only_to_staff(
    requester: User, admin_user: User
) -> None:
    engineer = client_for(requester).get(reverse("dashboard")).content.decode()
    staff = client_for(admin_user).get(reverse("dashboard")).content.decode()
    assert f'<form method="post" action="{reverse("logout")}">' in engineer
    assert "alice" in engineer
    assert reverse("admin:index") not in engineer
    assert reverse("admin:index") in staff


def test_it_refuses_anonymous_sync_and_refresh_requests(
    anonymous: Any, payments: AwsAccount
) -> None:
    role = make_role(payments, "ci-deployer")
    sync = anonymous.post(reverse("account_sync", args=[payments.account_id]))
    refresh = anonymous.post(reverse("role_refresh", args=[payments.account_id, role.name]))
    assert sync.status_code == 302
    assert sync["Location"].startswith(reverse("login"))
    assert refresh.status_code == 302
    assert not SyncRun.objects.exists()
    role.refresh_from_db()
    assert role.refresh_requested_at is None


@pytest.mark.parametrize(
    "url",
    [
        lambda: reverse("account_detail", args=["999999999999"]),
        lambda: reverse("role_detail", args=["111111111111", "no-such-role"]),
        lambda: reverse("role_detail", args=["999999999999", "ci-deployer"]),
        lambda: reverse("resource_detail", args=[999999]),
        lambda: reverse("policy_detail", args=[999999]),
    ],
    ids=["account", "role", "role in unknown account", "resource", "policy"],
)
def test_it_answers_404_for_unknown_objects(
    requester: User, payments: AwsAccount, url: Callable[[], str]
) -> None:
    make_role(payments, "ci-deployer")
    assert client_for(requester).get(url()).status_code == 404


def test_it_answers_404_for_a_role_under_the_wrong_account(
    requester: User, payments: AwsAccount, analytics: AwsAccount
) -> None:
    make_role(payments, "ci-deployer")
    url = reverse("role_detail", args=[analytics.account_id, "ci-deployer"])
    assert client_for(requester).get(url).status_code == 404


# --- dashboard --------------------------------------------------------------------


def test_it_shows_the_error_of_a_failed_account_on_the_dashboard(
    requester: User, payments: AwsAccount, analytics: AwsAccount
) -> None:
    error = (
        "Could not assume arn:aws:iam::111111111111:role/iamportal-spoke: AccessDenied: "
        "User: arn:aws:sts::000000000000:assumed-role/hub is not authorized to perform "
        "sts:AssumeRole on resource arn:aws:iam::111111111111:role/iamportal-spoke"
    )
    finished_run(payments, SyncRun.Status.FAILED, error=error)
    finished_run(analytics, SyncRun.Status.SUCCEEDED, counts={"roles": 7, "created": 7})

    response = client_for(requester).get(reverse("dashboard"))

    html = response.content.decode()
    assert error in html
    assert "Failed" in html and "Succeeded" in html
    assert "7 roles" in html


def test_it_counts_the_inventory_of_each_account_and_in_total(
    requester: User, payments: AwsAccount, analytics: AwsAccount
) -> None:
    make_role(payments, "ci-deployer")
    make_role(payments, "billing-reader")
    make_role(analytics, "etl")
    make_resource(payments, "invoices")
    make_policy(analytics, "read-lake")

    response = client_for(requester).get(reverse("dashboard"))

    rows = {a.account_id: a for a in response.context["accounts"]}
    assert (rows["111111111111"].role_count, rows["111111111111"].resource_count) == (2, 1)
    assert (rows["222222222222"].role_count, rows["222222222222"].policy_count) == (1, 1)
    totals = response.context["totals"]
    assert (totals.accounts, totals.roles, totals.policies, totals.resources) == (2, 3, 1, 1)


def test_it_polls_the_dashboard_with_a_progress_bar_while_a_sync_runs(
    requester: User, payments: AwsAccount
) -> None:
    run = SyncRun.objects.create(
        account=payments, status=SyncRun.Status.RUNNING, progress=40, stage="Reading S3 buckets"
    )
    payments.latest_sync = run
    payments.save(update_fields=["latest_sync"])
    client = client_for(requester)

    page = client.get(reverse("dashboard")).content.decode()
    region = client.get(reverse("dashboard"), headers={"HX-Request": "true"}).content.decode()

    assert 'hx-trigger="every 2s"' in page
    assert "40% · Reading S3 buckets" in page
    assert region.lstrip().startswith('<section id="accounts"')
    assert "<html" not in region
    assert 'hx-trigger="every 2s"' in region


def test_it_stops_polling_the_dashboard_once_every_sync_finished(
    requester: User, payments: AwsAccount
) -> None:
    finished_run(payments, SyncRun.Status.SUCCEEDED)
    region = client_for(requester).get(reverse("dashboard"), headers={"HX-Request": "true"})
    assert "every 2s" not in region.content.decode()


def test_it_keeps_dashboard_queries_constant_as_accounts_grow(
    requester: User, django_assert_max_num_queries: Any
) -> None:
    for number in range(10):
        account = AwsAccount.objects.create(account_id=f"{number:012d}", name=f"account-{number}")
        finished_run(account, SyncRun.Status.SUCCEEDED)
        make_role(account, "ci-deployer")
    client = client_for(requester)
    # Session and user, then the accounts with their counts and latest sync.
    with django_assert_max_num_queries(4):
        client.get(reverse("dashboard"))


# --- accounts and Sync now --------------------------------------------------------


def test_it_shows_an_account_with_its_recent_syncs(requester: User, payments: AwsAccount) -> None:
    for _ in range(25):
        finished_run(payments, SyncRun.Status.SUCCEEDED)
    finished_run(payments, SyncRun.Status.FAILED, error="Throttling: Rate exceeded")
    make_role(payments, "ci-deployer")

    response = client_for(requester).get(reverse("account_detail", args=[payments.account_id]))

    assert response.status_code == 200
    assert len(response.context["runs"]) == 20
    html = response.content.decode()
    assert "Throttling: Rate exceeded" in html
    assert "arn:aws:iam::111111111111:role/iamportal-spoke" in html


def test_an_account_page_says_how_many_approvals_a_change_needs(
    requester: User, payments: AwsAccount, analytics: AwsAccount
) -> None:
    payments.approvals_required = 2
    payments.save(update_fields=["approvals_required"])
    client = client_for(requester)

    prod = client.get(reverse("account_detail", args=[payments.account_id])).content.decode()
    other = client.get(reverse("account_detail", args=[analytics.account_id])).content.decode()

    assert "Approvals required</dt><dd>2 " in prod
    assert "distinct reviewers must approve each change" in prod
    assert "Approvals required</dt><dd>1 " in other
    assert "one reviewer approves each change" in other


def test_it_hides_sync_now_from_engineers(requester: User, payments: AwsAccount) -> None:
    response = client_for(requester).get(reverse("account_detail", args=[payments.account_id]))
    assert "Sync now" not in response.content.decode()


def test_it_rejects_sync_now_from_non_staff_with_404(
    requester: User, reviewer: User, payments: AwsAccount
) -> None:
    for user in (requester, reviewer):
        response = client_for(user).post(reverse("account_sync", args=[payments.account_id]))
        assert response.status_code == 404
    assert not SyncRun.objects.exists()


def test_it_syncs_an_account_when_staff_press_sync_now(
    admin_user: User, payments: AwsAccount, django_capture_on_commit_callbacks: Any
) -> None:
    client = client_for(admin_user)
    assert (
        "Sync now"
        in client.get(reverse("account_detail", args=[payments.account_id])).content.decode()
    )

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("account_sync", args=[payments.account_id]))

    assert response.status_code == 302
    assert response["Location"] == reverse("account_detail", args=[payments.account_id])
    run = SyncRun.objects.get(account=payments)
    assert run.requested_by == admin_user
    assert run.trigger == SyncRun.Trigger.MANUAL
    # The task ran inline: it reached the embedded AWS and finished one way or the other.
    assert run.status in (SyncRun.Status.SUCCEEDED, SyncRun.Status.FAILED)
    followed = client.get(response["Location"])
    assert "Sync of payments (111111111111)" in followed.content.decode()


def test_it_answers_404_to_sync_now_for_an_unknown_account(admin_user: User) -> None:
    response = client_for(admin_user).post(reverse("account_sync", args=["999999999999"]))
    assert response.status_code == 404


# --- role search --------------------------------------------------------------------


@pytest.fixture
def roles(payments: AwsAccount, analytics: AwsAccount) -> None:
    make_role(payments, "ci-deployer", path="/service-role/")
    make_role(payments, "billing-reader")
    make_role(analytics, "etl-loader")
    make_role(analytics, "CI-Runner")


def test_it_finds_roles_by_partial_name_in_any_case(requester: User, roles: None) -> None:
    response = client_for(requester).get(reverse("role_list"), {"q": "ci-"})
    html = response.content.decode()
    assert listed_role_names(html, "ci-deployer", "CI-Runner", "billing-reader", "etl-loader") == {
        "ci-deployer",
        "CI-Runner",
    }


def test_it_finds_roles_by_partial_arn(requester: User, roles: None) -> None:
    response = client_for(requester).get(
        reverse("role_list"), {"q": "111111111111:ROLE/SERVICE-ROLE/ci"}
    )
    html = response.content.decode()
    assert listed_role_names(html, "ci-deployer", "CI-Runner", "billing-reader") == {"ci-deployer"}


def test_it_lists_only_the_roles_of_the_chosen_account(
    requester: User, roles: None, analytics: AwsAccount
) -> None:
    response = client_for(requester).get(
        reverse("role_list"), {"q": "ci", "account": analytics.account_id}
    )
    html = response.content.decode()
    assert listed_role_names(html, "ci-deployer", "CI-Runner") == {"CI-Runner"}


def test_it_does_not_list_a_role_of_account_a_when_filtering_by_account_b(
    requester: User, payments: AwsAccount, analytics: AwsAccount
) -> None:
    make_role(payments, "payments-only")
    response = client_for(requester).get(reverse("role_list"), {"account": analytics.account_id})
    assert "payments-only" not in response.content.decode()
    assert response.context["page"].roles == []


def test_it_answers_htmx_searches_with_the_results_only(requester: User, roles: None) -> None:
    response = client_for(requester).get(
        reverse("role_list"), {"q": "etl"}, headers={"HX-Request": "true"}
    )
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="results"')
    assert "<html" not in html and 'name="q"' not in html
    assert listed_role_names(html, "etl-loader", "ci-deployer") == {"etl-loader"}
    assert "HX-Request" in response["Vary"]


def test_it_gives_a_whole_page_to_htmx_history_restores(requester: User, roles: None) -> None:
    response = client_for(requester).get(
        reverse("role_list"),
        {"q": "etl"},
        headers={"HX-Request": "true", "HX-History-Restore-Request": "true"},
    )
    assert "<html" in response.content.decode()


def test_it_gives_a_whole_page_to_boosted_links(requester: User, roles: None) -> None:
    response = client_for(requester).get(
        reverse("role_list"), {"q": "etl"}, headers={"HX-Request": "true", "HX-Boosted": "true"}
    )
    assert "<html" in response.content.decode()


def test_it_works_as_a_plain_form_without_javascript(requester: User, roles: None) -> None:
    response = client_for(requester).get(reverse("role_list"), {"q": "billing"})
    html = response.content.decode()
    assert '<form class="filters" method="get"' in html
    assert 'value="billing"' in html
    assert listed_role_names(html, "billing-reader", "etl-loader") == {"billing-reader"}


def test_it_rejects_a_too_long_search_with_a_message(requester: User, roles: None) -> None:
    response = client_for(requester).get(reverse("role_list"), {"q": "a" * 201})
    assert response.status_code == 200
    html = response.content.decode()
    assert "at most 200 characters" in html
    assert listed_role_names(html, "ci-deployer", "billing-reader") == set()


def test_it_rejects_an_unknown_account_filter_with_a_message(requester: User, roles: None) -> None:
    response = client_for(requester).get(reverse("role_list"), {"account": "999999999999"})
    assert response.status_code == 200
    assert "There is no such account." in response.content.decode()


def test_a_role_search_without_a_match_says_so_with_the_query_and_a_way_back(
    requester: User, roles: None
) -> None:
    response = client_for(requester).get(reverse("role_list"), {"q": "<b>zebra</b>"})
    html = response.content.decode()
    assert "No role matches “&lt;b&gt;zebra&lt;/b&gt;”." in html
    assert "<b>zebra</b>" not in html
    assert f'<a href="{reverse("role_list")}">Show all roles</a>' in html
    assert "<table" not in html


def test_an_htmx_role_search_without_a_match_says_so_in_the_region(
    requester: User, roles: None
) -> None:
    response = client_for(requester).get(
        reverse("role_list"), {"q": "zebra"}, headers={"HX-Request": "true"}
    )
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="results"')
    assert "No role matches “zebra”." in html
    assert "Show all roles" in html


def test_a_role_filter_without_a_match_names_the_filters(
    requester: User, payments: AwsAccount, analytics: AwsAccount
) -> None:
    make_role(payments, "payments-only")
    client = client_for(requester)
    html = client.get(reverse("role_list"), {"account": analytics.account_id}).content.decode()
    assert "No role matches these filters." in html
    html = client.get(
        reverse("role_list"), {"q": "payments", "account": analytics.account_id}
    ).content.decode()
    assert "No role matches “payments” with these filters." in html


def test_an_empty_inventory_says_what_fills_it(requester: User) -> None:
    html = client_for(requester).get(reverse("role_list")).content.decode()
    assert "There are no roles in the inventory yet" in html


def test_it_pages_roles_fifty_at_a_time_by_name(requester: User, payments: AwsAccount) -> None:
    IamRole.objects.bulk_create(
        IamRole(
            account=payments,
            arn=f"arn:aws:iam::{payments.account_id}:role/app-{number:03d}",
            name=f"app-{number:03d}",
            content_hash="x",
            synced_at=timezone.now(),
        )
        for number in range(51)
    )
    client = client_for(requester)

    first = client.get(reverse("role_list"), {"q": "app-"})
    second = client.get(reverse("role_list"), {"q": "app-", "page": "2"})

    assert [r.name for r in first.context["page"]][:2] == ["app-000", "app-001"]
    assert len(first.context["page"]) == 50
    assert [r.name for r in second.context["page"]] == ["app-050"]
    assert "page=2" in first.content.decode()


def test_a_role_search_reads_one_row_past_the_page_and_counts_nothing(
    requester: User, payments: AwsAccount
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    IamRole.objects.bulk_create(
        IamRole(
            account=payments,
            arn=f"arn:aws:iam::{payments.account_id}:role/app-{number:03d}",
            name=f"app-{number:03d}",
            content_hash="x",
            synced_at=timezone.now(),
        )
        for number in range(120)
    )
    client = client_for(requester)

    with CaptureQueriesContext(connection) as queries:
        first = client.get(reverse("role_list"), {"q": "app-"}).content.decode()
    last = client.get(reverse("role_list"), {"q": "app-", "page": "3"}).content.decode()
    beyond = client.get(reverse("role_list"), {"q": "app-", "page": "x"}).content.decode()

    role_queries = [q["sql"] for q in queries.captured_queries if "accounts_iamrole" in q["sql"]]
    assert not any("COUNT(" in sql.upper() for sql in role_queries)
    assert "Roles 1\u201350 of more than 50 matching “app-”." in first
    assert "Type more of the name or ARN" in first
    assert "page=2" in first
    assert "Roles 101\u2013120 matching “app-”." in last
    assert "page=4" not in last and "page=2" in last
    assert "Roles 1\u201350" in beyond


# --- role detail ----------------------------------------------------------------------


def test_it_shows_a_role_with_its_policies(requester: User, payments: AwsAccount) -> None:
    policy = make_policy(payments, "read-invoices", document=READ_INVOICES)
    role = make_role(
        payments,
        "billing-reader",
        description="Reads invoices",
        trust_policy=TRUST_POLICY,
        inline_policies={"read-invoices-inline": READ_INVOICES},
        managed_policies=[
            {"arn": policy.arn, "name": policy.name},
            {"arn": "arn:aws:iam::aws:policy/ReadOnlyAccess", "name": "ReadOnlyAccess"},
        ],
        tags={"team": "payments"},
        last_used_region="eu-west-1",
        last_used_on=timezone.now().date(),
    )

    client = client_for(requester)

    def tab(name: str) -> Any:
        return client.get(reverse(name, args=[payments.account_id, role.name]))

    html = tab("role_detail").content.decode()
    assert role.arn in html
    assert "Reads invoices" in html
    assert "eu-west-1" in html
    assert "read-invoices-inline" in tab("role_inline").content.decode()
    assert "&quot;Resource&quot;: &quot;arn:aws:s3:::invoices/*&quot;" in (
        tab("role_inline").content.decode()
    )
    trust = tab("role_trust")
    assert "&quot;Service&quot;: &quot;ec2.amazonaws.com&quot;" in trust.content.decode()
    # Pretty-printed, not one long line.
    assert '\n      "Effect"' in trust.context["trust_policy"]
    managed = tab("role_managed").content.decode()
    assert reverse("policy_detail", args=[policy.pk]) in managed
    assert "ReadOnlyAccess" in managed
    assert "payments" in tab("role_tags").content.decode()


def test_it_says_when_a_role_was_never_used(requester: User, payments: AwsAccount) -> None:
    role = make_role(payments, "idle")
    response = client_for(requester).get(
        reverse("role_detail", args=[payments.account_id, role.name])
    )
    assert "never / unknown" in response.content.decode()


def test_it_refreshes_a_role_and_polls_until_it_is_done(
    requester: User, payments: AwsAccount
) -> None:
    role = make_role(payments, "ci-deployer")
    client = client_for(requester)
    before = client.get(reverse("role_detail", args=[payments.account_id, role.name]))
    assert "every 2s" not in before.content.decode()

    response = client.post(reverse("role_refresh", args=[payments.account_id, role.name]))

    assert response.status_code == 302
    assert response["Location"] == reverse("role_detail", args=[payments.account_id, role.name])
    role.refresh_from_db()
    assert role.refresh_pending
    region = client.get(
        response["Location"], headers={"HX-Request": "true", "HX-Target": "role-detail"}
    ).content.decode()
    assert region.lstrip().startswith('<section id="role-detail"')
    assert 'hx-trigger="every 2s"' in region


def test_it_reloads_the_page_when_a_refreshed_role_was_deleted_in_aws(
    requester: User, payments: AwsAccount
) -> None:
    role = make_role(payments, "short-lived")
    url = reverse("role_detail", args=[payments.account_id, role.name])
    role.delete()
    client = client_for(requester)

    poll = client.get(url, headers={"HX-Request": "true"})

    assert poll["HX-Refresh"] == "true"
    assert client.get(url).status_code == 404


# --- resources and policies ------------------------------------------------------------


def test_it_filters_resources_by_type_account_and_name(
    requester: User, payments: AwsAccount, analytics: AwsAccount
) -> None:
    make_resource(payments, "invoices", "s3")
    make_resource(payments, "invoice-events", "sqs")
    make_resource(payments, "invoice-alerts", "sns")
    make_resource(analytics, "invoice-archive", "s3")
    client = client_for(requester)

    def names(**params: str) -> set[str]:
        response = client.get(reverse("resource_list"), params)
        return {r.name for r in response.context["page"]}

    assert names(q="INVOICE") == {"invoices", "invoice-events", "invoice-alerts", "invoice-archive"}
    assert names(q="invoice", type="sqs") == {"invoice-events"}
    assert names(type="s3", account=analytics.account_id) == {"invoice-archive"}
    assert names(q=f"sns:us-east-1:{payments.account_id}") == {"invoice-alerts"}


def test_it_answers_htmx_resource_searches_with_the_results_only(
    requester: User, payments: AwsAccount
) -> None:
    make_resource(payments, "invoices")
    response = client_for(requester).get(
        reverse("resource_list"), {"q": "inv"}, headers={"HX-Request": "true"}
    )
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="results"')
    assert "invoices" in html


def test_a_resource_search_without_a_match_says_so_in_the_page_and_the_region(
    requester: User, payments: AwsAccount
) -> None:
    make_resource(payments, "invoices")
    client = client_for(requester)
    for headers in ({}, {"HX-Request": "true"}):
        html = client.get(reverse("resource_list"), {"q": "x&y"}, headers=headers).content.decode()
        assert "No resource matches “x&amp;y”." in html
        assert f'<a href="{reverse("resource_list")}">Show all resources</a>' in html
    html = client.get(reverse("resource_list"), {"q": "invoices", "type": "sqs"}).content.decode()
    assert "No resource matches “invoices” with these filters." in html


def test_it_rejects_a_too_long_resource_search_with_a_message(requester: User) -> None:
    response = client_for(requester).get(reverse("resource_list"), {"q": "x" * 500})
    assert response.status_code == 200
    assert "at most 200 characters" in response.content.decode()


def test_it_shows_a_resource_with_its_policy_and_attributes(
    requester: User, payments: AwsAccount
) -> None:
    resource = make_resource(
        payments,
        "invoice-events",
        "sqs",
        policy={"Version": "2012-10-17", "Statement": [{"Sid": "AllowBilling"}]},
        attributes={"VisibilityTimeout": "30"},
        tags={"team": "payments"},
    )
    response = client_for(requester).get(reverse("resource_detail", args=[resource.pk]))
    html = response.content.decode()
    assert resource.arn in html
    assert "SQS queue" in html
    assert "&quot;Sid&quot;: &quot;AllowBilling&quot;" in html
    assert "VisibilityTimeout" in html
    assert "us-east-1" in html


def test_it_shows_a_managed_policy_document(requester: User, payments: AwsAccount) -> None:
    policy = make_policy(payments, "read-invoices", document=READ_INVOICES)
    response = client_for(requester).get(reverse("policy_detail", args=[policy.pk]))
    html = response.content.decode()
    assert policy.arn in html
    assert "&quot;Action&quot;: &quot;s3:GetObject&quot;" in html


def test_a_search_matching_more_than_the_limit_asks_for_a_narrower_one(
    requester: Any, settings: Any, monkeypatch: Any
) -> None:
    from accounts import selectors

    monkeypatch.setattr(selectors, "SEARCH_MATCH_LIMIT", 3)
    account = AwsAccount.objects.create(account_id="999988887777", name="wide")
    for n in range(5):
        IamRole.objects.create(
            account=account,
            arn=f"arn:aws:iam::999988887777:role/svc-{n}",
            name=f"svc-{n}",
            content_hash="x",
            synced_at=timezone.now(),
        )
    page = client_for(requester).get("/roles/", {"q": "SVC"}).content.decode()
    assert "More than 3 roles match" in page
    narrow = client_for(requester).get("/roles/", {"q": "svc-4"}).content.decode()
    assert "1 role matching" in narrow
