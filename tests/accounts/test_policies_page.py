"""The Policies page (/policies/), its CSV and JSON exports, and the entries
behind them that syncs keep in line with the inventory."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.http import StreamingHttpResponse
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts import entries, selectors, services
from accounts.models import (
    AwsAccount,
    CloudResource,
    Database,
    IamRole,
    IamUser,
    InventoryEntry,
    ManagedPolicy,
    config_type_label,
)
from iamportal import demo
from tests.factories import Inventory, client_for, sync

pytestmark = pytest.mark.django_db

PUBLIC_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*"}],
}
ORG_ONLY_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": "sqs:SendMessage",
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-abc"}},
        }
    ],
}


def _synced(**extra: Any) -> dict[str, Any]:
    return {"content_hash": "x", "synced_at": timezone.now(), **extra}


@pytest.fixture
def world(inv: Inventory) -> Inventory:
    """The shared inventory, a second account, and one item of every other kind."""
    account = inv.account
    CloudResource.objects.filter(name="acme-prod-audit-logs").update(
        policy=PUBLIC_POLICY, tags={"team": "security", "=cmd": "+SUM(A1)"}
    )
    CloudResource.objects.filter(type="sqs").update(policy=ORG_ONLY_POLICY)
    IamRole.objects.filter(pk=inv.api.pk).update(tags={"team": "payments", "env": "prod"})
    IamUser.objects.create(
        account=account,
        arn=f"arn:aws:iam::{account.account_id}:user/deploy-bot",
        name="deploy-bot",
        **_synced(),
    )
    ManagedPolicy.objects.create(
        account=account,
        arn=f"arn:aws:iam::{account.account_id}:policy/payments-read",
        name="payments-read",
        **_synced(),
    )
    Database.objects.create(
        account=account,
        arn=f"arn:aws:rds:us-east-1:{account.account_id}:db:payments-db",
        name="payments-db",
        type="rds-instance",
        region="us-east-1",
        **_synced(),
    )
    other = AwsAccount.objects.create(account_id="222233334444", name="acme-dev")
    IamRole.objects.create(
        account=other,
        arn="arn:aws:iam::222233334444:role/payments-dev",
        name="payments-dev",
        trust_policy={
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:*"}]
        },
        tags={"team": "payments"},
        **_synced(synced_at=timezone.now() - timedelta(days=400)),
    )
    for account_ in (account, other):
        services.inventory_entries_refresh(account=account_)
    return inv


def body(response: Any) -> bytes:
    assert isinstance(response, StreamingHttpResponse)
    return b"".join(response.streaming_content)  # type: ignore[arg-type]


def names(response: Any) -> list[str]:
    page = response.context["page"]
    return [entry.name for entry in page.entries]


def get(client: Client, **params: Any) -> Any:
    return client.get(reverse("policy_list"), params)


# --- the entries --------------------------------------------------------------------


def test_every_kind_of_item_has_one_entry(world: Inventory) -> None:
    kinds = dict(
        InventoryEntry.objects.filter(account=world.account)
        .values_list("name", "type")
        .order_by("name")
    )
    assert kinds == {
        "ReadOnly": "role",
        "payments-api": "role",
        "deploy-bot": "user",
        "payments-read": "policy",
        "acme-prod-audit-logs": "s3",
        "acme-prod-payments-data": "s3",
        "payments-events": "sqs",
        "payments-alerts": "sns",
        "payments-db": "rds-instance",
    }


def test_a_refresh_with_nothing_changed_writes_nothing(world: Inventory) -> None:
    assert services.inventory_entries_refresh(account=world.account) == 0


def test_a_changed_item_is_rewritten_and_a_vanished_one_removed(world: Inventory) -> None:
    later = timezone.now() + timedelta(minutes=1)
    CloudResource.objects.filter(name="acme-prod-payments-data").update(
        policy=PUBLIC_POLICY, synced_at=later
    )
    IamUser.objects.filter(name="deploy-bot").delete()

    assert services.inventory_entries_refresh(account=world.account) == 2
    entry = InventoryEntry.objects.get(name="acme-prod-payments-data")
    assert entry.public and entry.has_resource_policy
    assert entry.changed_at == later
    assert not InventoryEntry.objects.filter(name="deploy-bot").exists()


def test_public_is_a_policy_that_lets_anyone_in_without_a_limiting_condition(
    world: Inventory,
) -> None:
    flags = dict(InventoryEntry.objects.values_list("name", "public"))
    assert flags["acme-prod-audit-logs"] is True  # Principal "*"
    assert flags["payments-events"] is False  # "*", but only within the organisation
    assert flags["payments-dev"] is True  # a trust policy anyone may use
    assert flags["payments-api"] is False


def test_a_sync_keeps_the_entries_and_a_second_one_writes_none() -> None:
    org = demo.organisation_seed()
    account = demo.accounts_onboard(org)[0]
    sync(account)
    roles = IamRole.objects.filter(account=account).count()
    resources = CloudResource.objects.filter(account=account).count()
    assert InventoryEntry.objects.filter(account=account, kind="role").count() == roles
    assert InventoryEntry.objects.filter(account=account, kind="resource").count() == resources

    with CaptureQueriesContext(connection) as queries:
        second = sync(account)
    assert second.counts["written"] == 0
    writes = [
        q["sql"]
        for q in queries.captured_queries
        if "inventoryentry" in q["sql"] and not q["sql"].lstrip().upper().startswith("SELECT")
    ]
    assert writes == []


def _entries(account: AwsAccount) -> list[dict[str, Any]]:
    return list(
        InventoryEntry.objects.filter(account=account)
        .order_by("kind", "object_id")
        .values(*[f.attname for f in InventoryEntry._meta.concrete_fields if f.name != "id"])
    )


def test_a_sync_builds_the_entries_it_would_read_back_from_its_rows() -> None:
    org = demo.organisation_seed()
    account = demo.accounts_onboard(org)[0]
    sync(account)
    built = _entries(account)
    assert {entry["kind"] for entry in built} >= {"role", "policy", "resource"}
    assert any(entry["has_resource_policy"] for entry in built)

    # The same entries, built from the rows read back from the database.
    InventoryEntry.objects.filter(account=account).delete()
    services.inventory_entries_refresh(account=account)

    assert _entries(account) == built


# --- who may see it -----------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/policies/",
        "/policies/export.csv",
        "/policies/export.json",
        "/search/?q=payments",
    ],
)
def test_anonymous_visitors_are_sent_to_sign_in(anonymous: Client, url: str) -> None:
    response = anonymous.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("who", ["requester", "reviewer", "admin_user", "outsider"])
def test_every_signed_in_user_sees_the_inventory_as_on_the_other_inventory_pages(
    world: Inventory, who: str, request: pytest.FixtureRequest
) -> None:
    user: User = request.getfixturevalue(who)
    client = client_for(user)

    page = get(client, q="payments-api")
    exported = client.get(reverse("policy_export", args=["json"]), {"q": "payments-api"})
    role = client.get(reverse("role_detail", args=[world.account.account_id, "payments-api"]))

    assert names(page) == ["payments-api"]
    assert [row["name"] for row in json.loads(body(exported))] == ["payments-api"]
    assert role.status_code == 200


def test_a_deactivated_user_sees_nothing(world: Inventory, requester: User) -> None:
    client = client_for(requester)
    requester.is_active = False
    requester.save(update_fields=["is_active"])

    assert get(client).status_code == 302
    assert client.get(reverse("policy_export", args=["csv"])).status_code == 302


# --- filters ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"q": "PAYMENTS-a"}, ["payments-alerts", "payments-api"]),
        ({"q": "arn:aws:s3:::"}, ["acme-prod-audit-logs", "acme-prod-payments-data"]),
        ({"account": "222233334444"}, ["payments-dev"]),
        ({"type": "user"}, ["deploy-bot"]),
        ({"type": "rds-instance"}, ["payments-db"]),
        ({"type": "policy"}, ["payments-read"]),
        ({"tag": "team"}, ["acme-prod-audit-logs", "payments-api", "payments-dev"]),
        ({"tag": "team=payments"}, ["payments-api", "payments-dev"]),
        ({"tag": "team=payments", "account": "222233334444"}, ["payments-dev"]),
        ({"tag": " env = prod "}, ["payments-api"]),
        ({"has_policy": "on", "type": "sqs"}, ["payments-events"]),
        ({"public": "on"}, ["acme-prod-audit-logs", "payments-dev"]),
        ({"unchanged_days": "30"}, ["payments-dev"]),
        ({"q": "zebra-unicorn"}, []),
    ],
)
def test_the_filters(
    world: Inventory, requester: User, params: dict[str, str], expected: list[str]
) -> None:
    response = get(client_for(requester), **params)
    assert response.status_code == 200
    assert names(response) == expected


def test_the_page_links_to_each_item_and_to_the_aws_console(
    world: Inventory, requester: User
) -> None:
    page = get(client_for(requester)).content.decode()

    db = Database.objects.get(name="payments-db")
    assert f'href="{reverse("database_detail", args=[db.pk])}"' in page
    assert f'href="/accounts/{world.account.account_id}/users/deploy-bot/"' in page
    assert (
        "https://us-east-1.console.aws.amazon.com/rds/home?region=us-east-1"
        "#database:id=payments-db;is-cluster=false" in page
    )
    assert "https://console.aws.amazon.com/iam/home#/roles/details/payments-api" in page


def test_the_type_filter_offers_the_aws_config_types_the_inventory_holds(
    world: Inventory, requester: User
) -> None:
    account = world.account
    for config_type, name in (
        ("AWS::DynamoDB::Table", "orders-table"),
        ("AWS::KMS::Key", "payments-key"),
        ("AWS::Lambda::Function", "payments-worker"),
    ):
        CloudResource.objects.create(
            account=account,
            type=config_type,
            source=CloudResource.Source.CONFIG,
            region="us-east-1",
            arn=f"arn:aws:x:us-east-1:{account.account_id}:{name}",
            name=name,
            **_synced(),
        )
    services.inventory_entries_refresh(account=account)
    client = client_for(requester)

    response = get(client)
    options = dict(response.context["form"].fields["type"].choices)
    assert options["AWS::DynamoDB::Table"] == "DynamoDB table"
    assert options["AWS::KMS::Key"] == "KMS key"
    assert options["AWS::Lambda::Function"] == "Lambda function"
    assert options["role"] == "IAM role" and options["rds-instance"] == "RDS instance"
    assert '<option value="AWS::KMS::Key">KMS key</option>' in response.content.decode()

    filtered = get(client, type="AWS::KMS::Key")
    assert not filtered.context["form"].errors
    assert names(filtered) == ["payments-key"]
    assert '<span class="badge">KMS key</span>' in filtered.content.decode()


@pytest.mark.parametrize(
    ("config_type", "label"),
    [
        ("AWS::EC2::SecurityGroup", "EC2 security group"),
        ("AWS::RDS::DBSnapshot", "RDS DB snapshot"),
        ("AWS::ElasticLoadBalancingV2::LoadBalancer", "ElasticLoadBalancingV2 load balancer"),
        ("Custom::Thing", "Custom::Thing"),
    ],
)
def test_an_aws_config_type_reads_as_words(config_type: str, label: str) -> None:
    assert config_type_label(config_type) == label


@pytest.mark.parametrize(
    "params",
    [
        {"unchanged_days": "abc"},
        {"unchanged_days": "0"},
        {"unchanged_days": "99999999999999999999"},
        {"type": "AWS::Nope"},
        {"account": "nope"},
        {"tag": "=value"},
        {"q": "x" * 201},
        {"after": "not-a-cursor"},
        {"before": "WyJhIiwtMV0"},  # ["a",-1]
        {"after": "x" * 5000},
    ],
)
def test_bad_filters_are_a_form_error_and_bad_exports_a_400(
    world: Inventory, requester: User, params: dict[str, str]
) -> None:
    client = client_for(requester)
    page = get(client, **params)
    export = client.get(reverse("policy_export", args=["csv"]), params)

    assert page.status_code == 200
    assert page.context["form"].errors
    assert 'class="errorlist"' in page.content.decode()
    assert export.status_code == 400


def test_an_unknown_export_format_is_a_404(world: Inventory, requester: User) -> None:
    assert client_for(requester).get("/policies/export.xml").status_code == 404


# --- pages --------------------------------------------------------------------------


@pytest.fixture
def many(inv: Inventory) -> list[tuple[str, int]]:
    """130 resources whose names sort in a known order, two of them with the same name."""
    now = timezone.now()
    CloudResource.objects.bulk_create(
        CloudResource(
            account=inv.account,
            arn=f"arn:aws:sqs:us-east-1:{inv.account.account_id}:q-{index:03d}",
            name=f"q-{index:03d}" if index != 7 else "q-006",
            type="sqs",
            region="us-east-1",
            content_hash="x",
            synced_at=now,
        )
        for index in range(130)
    )
    services.inventory_entries_refresh(account=inv.account)
    return sorted(
        InventoryEntry.objects.filter(type="sqs", name__startswith="q-").values_list("name", "id")
    )


@pytest.fixture(params=[selectors.PAGE_WINDOW, 7], ids=["window", "past-the-window"])
def window(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """A text or tag filter looks through a window of entries in page order, then
    past it through the indexes: with a window of 7, most pages come from past it."""
    monkeypatch.setattr(selectors, "PAGE_WINDOW", request.param)
    return int(request.param)


def test_next_links_walk_every_item_once_in_order(
    many: list[Any], requester: User, window: int
) -> None:
    client = client_for(requester)
    seen: list[str] = []
    response = get(client, type="sqs", q="q-")
    pages = 0
    while True:
        pages += 1
        seen += names(response)
        cursor = response.context["page"].next_cursor
        if cursor is None:
            break
        response = get(client, type="sqs", q="q-", after=cursor)

    assert pages == 3
    assert seen == [name for name, _ in many]


@pytest.mark.parametrize("params", [{"type": "sqs"}, {"q": "q-"}, {"tag": "team"}])
def test_previous_goes_back_to_the_page_before(
    many: list[Any], requester: User, window: int, params: dict[str, str]
) -> None:
    InventoryEntry.objects.filter(name__startswith="q-").update(tags={"team": "x"})
    client = client_for(requester)
    first = get(client, **params)
    second = get(client, **params, after=first.context["page"].next_cursor)
    third = get(client, **params, after=second.context["page"].next_cursor)
    back = get(client, **params, before=third.context["page"].previous_cursor)
    back_again = get(client, **params, before=back.context["page"].previous_cursor)

    assert len(names(first)) == 50
    assert names(back) == names(second)
    assert names(back_again) == names(first)
    assert back_again.context["page"].is_first
    assert "Next →" in second.content.decode() and "← Previous" in second.content.decode()


def test_an_htmx_request_gets_the_results_only(world: Inventory, requester: User) -> None:
    response = client_for(requester).get(
        reverse("policy_list"), {"type": "role"}, HTTP_HX_REQUEST="true"
    )
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="results"')
    assert "payments-api" in body


def test_the_page_says_when_nothing_matches(world: Inventory, requester: User) -> None:
    body = get(client_for(requester), q="zebra").content.decode()
    assert "No item matches “zebra”" in body


# --- exports ------------------------------------------------------------------------


def _csv(response: Any) -> list[dict[str, str]]:
    text = body(response).decode()
    return list(csv.DictReader(io.StringIO(text)))


def test_the_csv_export_holds_the_filtered_set(world: Inventory, requester: User) -> None:
    response = client_for(requester).get(
        reverse("policy_export", args=["csv"]), {"tag": "team=payments"}
    )

    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment;" in response["Content-Disposition"]
    rows = _csv(response)
    assert [(row["name"], row["account_id"], row["public"]) for row in rows] == [
        ("payments-api", world.account.account_id, "false"),
        ("payments-dev", "222233334444", "true"),
    ]


def test_csv_cells_that_a_spreadsheet_would_run_are_quoted(
    world: Inventory, requester: User
) -> None:
    CloudResource.objects.filter(name="acme-prod-payments-data").update(
        name='=HYPERLINK("http://evil.example")', synced_at=timezone.now() + timedelta(1)
    )
    services.inventory_entries_refresh(account=world.account)
    rows = _csv(client_for(requester).get(reverse("policy_export", args=["csv"]), {"type": "s3"}))

    cells = [cell for row in rows for cell in row.values()]
    assert '\'=HYPERLINK("http://evil.example")' in cells
    assert "'=cmd=+SUM(A1);team=security" in cells
    assert not any(cell.startswith(("=", "+", "-", "@")) for cell in cells)


@pytest.mark.parametrize("value", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"])
def test_a_formula_start_gets_a_leading_quote(value: str) -> None:
    assert entries.csv_cell(value) == "'" + value


def test_plain_cells_are_left_alone() -> None:
    assert entries.csv_cell("payments-api") == "payments-api"
    assert entries.csv_cell(True) == "true"
    assert entries.csv_cell({"b": "2", "a": "1"}) == "a=1;b=2"


def test_the_json_export_is_one_valid_array(world: Inventory, requester: User) -> None:
    response = client_for(requester).get(reverse("policy_export", args=["json"]), {"public": "on"})

    assert response["Content-Type"] == "application/json"
    rows = json.loads(body(response))
    assert [row["arn"] for row in rows] == [
        "arn:aws:s3:::acme-prod-audit-logs",
        "arn:aws:iam::222233334444:role/payments-dev",
    ]
    assert rows[0]["tags"] == {"team": "security", "=cmd": "+SUM(A1)"}


def test_an_empty_json_export_is_an_empty_array(world: Inventory, requester: User) -> None:
    response = client_for(requester).get(reverse("policy_export", args=["json"]), {"q": "zebra"})
    assert json.loads(body(response)) == []


EXPORTED = 50_000


def _bulk_entries(account: AwsAccount, count: int) -> None:
    now = timezone.now()
    InventoryEntry.objects.bulk_create(
        (
            InventoryEntry(
                account=account,
                kind="resource",
                object_id=1_000_000 + index,
                type="sqs",
                arn=f"arn:aws:sqs:us-east-1:{account.account_id}:bulk-{index:05d}",
                name=f"bulk-{index:05d}",
                region="us-east-1",
                changed_at=now,
                search_key=f"ARN:AWS:SQS:US-EAST-1:{account.account_id}:BULK-{index:05d}",
            )
            for index in range(count)
        ),
        batch_size=5000,
    )


@pytest.fixture
def fifty_thousand(inv: Inventory) -> AwsAccount:
    _bulk_entries(inv.account, EXPORTED)
    return inv.account


def test_an_export_of_50000_items_streams_them_a_chunk_at_a_time(
    fifty_thousand: AwsAccount, requester: User
) -> None:
    response = client_for(requester).get(reverse("policy_export", args=["csv"]), {"q": "bulk-"})
    assert isinstance(response, StreamingHttpResponse)

    with CaptureQueriesContext(connection) as queries:
        stream = iter(response.streaming_content)
        header = next(stream)
        first = next(stream)
        # The first row is out before more than one chunk has been read.
        assert len(queries.captured_queries) == 1
        rest = sum(1 for _ in stream)

    assert header.startswith(b"kind,type,account_id")
    assert b"bulk-00000" in first
    assert 1 + rest == EXPORTED
    chunks = [q for q in queries.captured_queries if "inventoryentry" in q["sql"]]
    assert len(chunks) == EXPORTED // selectors.EXPORT_CHUNK_SIZE + 1
    assert all(f"LIMIT {selectors.EXPORT_CHUNK_SIZE}" in q["sql"] for q in chunks)


def test_the_export_reads_the_whole_set_in_order_without_gaps(inv: Inventory) -> None:
    # Chunks that do not divide the set, the last one short: the same reading as
    # the 50,000-item export above, on fewer rows.
    _bulk_entries(inv.account, 2_000)
    found = selectors.policies_export(selectors.PolicyFilters(query="bulk-"), chunk_size=70)
    names_ = [entry.name for entry in found]
    assert names_ == [f"bulk-{index:05d}" for index in range(2_000)]


# --- console links ------------------------------------------------------------------


def _entry(type_: str, arn: str, name: str, region: str = "") -> InventoryEntry:
    return InventoryEntry(type=type_, arn=arn, name=name, region=region)


@pytest.mark.parametrize(
    ("entry", "url"),
    [
        (
            _entry("role", "arn:aws:iam::123456789012:role/svc/api", "api"),
            "https://console.aws.amazon.com/iam/home#/roles/details/api",
        ),
        (
            _entry("user", "arn:aws:iam::123456789012:user/bot", "bot"),
            "https://console.aws.amazon.com/iam/home#/users/details/bot",
        ),
        (
            _entry("policy", "arn:aws:iam::123456789012:policy/read", "read"),
            "https://console.aws.amazon.com/iam/home#/policies/details/"
            "arn%3Aaws%3Aiam%3A%3A123456789012%3Apolicy%2Fread",
        ),
        (
            _entry("s3", "arn:aws:s3:::reports", "reports"),
            "https://s3.console.aws.amazon.com/s3/buckets/reports",
        ),
        (
            _entry("sqs", "arn:aws:sqs:eu-west-1:123456789012:jobs", "jobs", "eu-west-1"),
            "https://eu-west-1.console.aws.amazon.com/sqs/v3/home?region=eu-west-1#/queues/"
            "https%3A%2F%2Fsqs.eu-west-1.amazonaws.com%2F123456789012%2Fjobs",
        ),
        (
            _entry("sns", "arn:aws:sns:us-east-1:123456789012:alerts", "alerts", "us-east-1"),
            "https://us-east-1.console.aws.amazon.com/sns/v3/home?region=us-east-1#/topic/"
            "arn:aws:sns:us-east-1:123456789012:alerts",
        ),
        (
            _entry("rds-cluster", "arn:aws:rds:us-east-1:123456789012:cluster:c", "c", "us-east-1"),
            "https://us-east-1.console.aws.amazon.com/rds/home?region=us-east-1"
            "#database:id=c;is-cluster=true",
        ),
        (
            _entry("dynamodb", "arn:aws:dynamodb:us-east-1:123456789012:table/t", "t", "us-east-1"),
            "https://console.aws.amazon.com/go/view?arn="
            "arn%3Aaws%3Adynamodb%3Aus-east-1%3A123456789012%3Atable%2Ft",
        ),
        (
            _entry("role", "arn:aws-us-gov:iam::123456789012:role/api", "api"),
            "https://console.amazonaws-us-gov.com/iam/home#/roles/details/api",
        ),
    ],
)
def test_console_links(entry: InventoryEntry, url: str) -> None:
    assert entries.console_url(entry) == url


# --- text search ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "probe"),
    [
        ("PAYMENTS", "PAYMENTS"),
        ("ARN:AWS:IAM::123456789012:ROLE/SERVICE/PAYMENTS-API", "123456789012"),
        (":ROLE/SERVICE-ROLE/LAMBDA-PLATFORM-STREAM-", "LAMBDA-PLATFORM-STREAM-"),
        ("ARN:AWS:IAM::", ""),
        ("AB", "AB"),
    ],
)
def test_the_trigram_index_is_asked_for_the_longest_piece_that_is_not_an_arn_word(
    text: str, probe: str
) -> None:
    assert selectors.search_probe(text) == probe


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("arn:aws:iam::111111111111:role/service/payments-api", ["payments-api"]),
        (":role/service/PAY", ["payments-api"]),
        (
            "arn:aws:iam::",
            ["deploy-bot", "payments-api", "payments-dev", "payments-read", "ReadOnly"],
        ),
        ("db", ["payments-db"]),
        ("arn:aws:iam::222233334444:role/payments-api", []),
        ("role/payments", ["payments-dev"]),
    ],
)
def test_text_search_matches_the_whole_text_in_the_arn(
    world: Inventory, requester: User, text: str, expected: list[str]
) -> None:
    found = names(get(client_for(requester), q=text))
    assert sorted(found, key=str.lower) == sorted(expected, key=str.lower)
