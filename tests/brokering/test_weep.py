"""The Weep wire contract: every endpoint field by field and type by type, role
resolution, every error code with its status, the audit, and who may call what."""

from __future__ import annotations

import json
import time
from ipaddress import ip_network
from typing import Any
from urllib.parse import quote

import pytest
from botocore.exceptions import ClientError
from django.apps import apps
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from accounts.models import CloudResource, Database, IamRole, IamUser, ManagedPolicy
from accounts.services import inventory_entries_refresh
from brokering.cli_auth import cli_token_issue
from brokering.models import CredentialIssuance
from brokering.weep import CliCredentialIssueApi, CliRoleDetailListApi
from iamportal import aws
from tests.factories import DEV, PROD, Org

pytestmark = pytest.mark.django_db

WEEP_AGENT = "weep/0.3.26 Go-http-client/1.1"
WEEP_ADDRESS = "203.0.113.7"


def weep_client(user: User) -> Client:
    """A client holding the cookie Weep gets from the challenge login."""
    client = Client(HTTP_USER_AGENT=WEEP_AGENT, REMOTE_ADDR=WEEP_ADDRESS)
    client.cookies["iamportal_auth"] = cli_token_issue(user=user).encoded
    return client


def get_credentials(client: Client, body: Any, content_type: str = "application/json") -> Any:
    raw = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post("/api/v1/get_credentials", raw, content_type=content_type)


def ask(client: Client, role: str, **extra: Any) -> Any:
    return get_credentials(client, {"requested_role": role, "no_ip_restrictions": False, **extra})


def assert_weep_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"code", "message", "requested_role", "request_id"}
    assert body["code"] == code
    assert isinstance(body["code"], str)
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["requested_role"], str)
    assert len(body["request_id"]) == 36
    return body


def fail_assume_role(**kwargs: Any) -> None:
    raise ClientError(
        {"Error": {"Code": "AccessDenied", "Message": "not authorized to assume"}}, "AssumeRole"
    )


# --- POST /api/v1/get_credentials --------------------------------------------------------------


def test_credentials_have_exactly_the_fields_and_types_weep_reads(
    requester: User, org: Org
) -> None:
    before = int(time.time())
    response = ask(weep_client(requester), org.arn("prod/payments-api"))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert list(body) == ["Credentials"]
    credentials = body["Credentials"]
    assert set(credentials) == {
        "AccessKeyId",
        "SecretAccessKey",
        "SessionToken",
        "Expiration",
        "RoleArn",
    }
    for key in ("AccessKeyId", "SecretAccessKey", "SessionToken"):
        assert isinstance(credentials[key], str) and credentials[key]
    assert type(credentials["Expiration"]) is int
    assert before + 900 <= credentials["Expiration"] <= before + 7200 + 60
    assert b'"Expiration":' + str(credentials["Expiration"]).encode() in response.content
    assert credentials["RoleArn"] == org.arn("prod/payments-api")


def test_each_request_gets_a_fresh_request_id(requester: User, org: Org) -> None:
    client = weep_client(requester)
    first = ask(client, "nothing-like-this").json()["request_id"]
    second = ask(client, "nothing-like-this").json()["request_id"]
    assert first != second


def test_an_exact_arn_wins_over_a_substring_of_a_longer_arn(requester: User, org: Org) -> None:
    longer = IamRole.objects.create(
        account=org.prod,
        arn=f"{org.arn('prod/payments-api')}-admin",
        name="payments-api-admin",
        path="/service/",
        tags={"iamportal-authorized": "team-payments"},
        content_hash="test",
        synced_at=timezone.now(),
    )
    from brokering.eligibility import access_changed

    access_changed()
    client = weep_client(requester)
    exact = ask(client, org.arn("prod/payments-api"))
    assert exact.status_code == 200
    assert exact.json()["Credentials"]["RoleArn"] == org.arn("prod/payments-api")
    any_case = ask(client, org.arn("prod/payments-api").upper())
    assert any_case.json()["Credentials"]["RoleArn"] == org.arn("prod/payments-api")
    assert ask(client, "payments-api-admin").json()["Credentials"]["RoleArn"] == longer.arn


def test_a_unique_substring_picks_the_role(requester: User, org: Org) -> None:
    response = ask(weep_client(requester), "WEB-frontend")
    assert response.json()["Credentials"]["RoleArn"] == org.arn("prod/web-frontend")


def test_cli_only_roles_are_served_to_the_cli(requester: User, org: Org) -> None:
    response = ask(weep_client(requester), "payments-batch")
    assert response.status_code == 200
    assert response.json()["Credentials"]["RoleArn"] == org.arn("prod/payments-batch")


def test_an_ambiguous_substring_is_901_listing_the_choices(requester: User, org: Org) -> None:
    response = ask(weep_client(requester), "service/payments-api")
    body = assert_weep_error(response, 403, "901")
    assert body["requested_role"] == "service/payments-api"
    assert org.arn("prod/payments-api") in body["message"]
    assert org.arn("dev/payments-api") in body["message"]
    assert org.arn("prod/payments-batch") not in body["message"]
    assert not CredentialIssuance.objects.filter(outcome="issued").exists()


def test_nothing_matching_is_900(requester: User, org: Org) -> None:
    body = assert_weep_error(ask(weep_client(requester), "nothing-like-this"), 403, "900")
    assert body["requested_role"] == "nothing-like-this"


def _anonymised(response: Any) -> bytes:
    body = response.json()
    content: bytes = response.content
    content = content.replace(body["request_id"].encode(), b"REQUEST-ID")
    # The request link in the message carries the name as asked, URL-encoded.
    content = content.replace(quote(body["requested_role"], safe="").encode(), b"REQUESTED-ROLE")
    return content.replace(body["requested_role"].encode(), b"REQUESTED-ROLE")


def test_another_users_role_is_903_and_identical_to_a_role_that_does_not_exist(
    requester: User, org: Org
) -> None:
    client = weep_client(requester)
    existing = ask(client, org.arn("prod/break-glass"))
    # The same length as break-glass, so even Content-Length cannot tell them apart.
    missing = ask(client, f"arn:aws:iam::{PROD}:role/nonexistent")
    assert_weep_error(existing, 403, "903")
    assert_weep_error(missing, 403, "903")
    assert _anonymised(existing) == _anonymised(missing)
    assert sorted(existing.headers.items()) == sorted(missing.headers.items())


@pytest.mark.parametrize("partition", ["aws-us-gov", "aws-cn", "aws-iso-b"])
def test_a_role_arn_of_another_partition_is_903_and_a_made_up_one_900(
    requester: User, org: Org, partition: str
) -> None:
    client = weep_client(requester)
    assert_weep_error(ask(client, f"arn:{partition}:iam::{PROD}:role/nonexistent"), 403, "903")
    assert_weep_error(ask(client, f"arn:awsfoo:iam::{PROD}:role/nonexistent"), 403, "900")


def test_a_substring_of_another_users_role_is_900_like_anything_unknown(
    requester: User, org: Org
) -> None:
    client = weep_client(requester)
    existing = ask(client, "break-glass")
    missing = ask(client, "nonexistent")
    assert_weep_error(existing, 403, "900")
    assert _anonymised(existing) == _anonymised(missing)
    assert sorted(existing.headers.items()) == sorted(missing.headers.items())


@pytest.mark.parametrize(
    "body",
    [
        "{not json",
        "[]",
        '"payments-api"',
        "null",
        {},
        {"requested_role": ""},
        {"requested_role": "   "},
        {"requested_role": "x" * 2049},
        {"requested_role": 7},
        {"requested_role": ["payments-api"]},
        {"requested_role": "payments-api", "no_ip_restrictions": "yes"},
        {"requested_role": "payments-api", "no_ip_restrictions": None},
        {"requested_role": "payments-api", "metadata": "laptop"},
        "[" * 50_000,
        json.dumps({"requested_role": "payments-batch", "padding": "x" * 70_000}),
    ],
)
def test_malformed_requests_are_904(requester: User, org: Org, body: Any) -> None:
    response = get_credentials(weep_client(requester), body)
    assert_weep_error(response, 400, "904")
    denied = CredentialIssuance.objects.get()
    assert (denied.kind, denied.outcome) == ("cli", "denied")
    assert denied.error.startswith("904")


def test_a_form_upload_is_904_not_a_crash(requester: User, org: Org) -> None:
    response = weep_client(requester).post(
        "/api/v1/get_credentials", {"requested_role": "payments-batch"}
    )
    assert_weep_error(response, 400, "904")


def test_unknown_fields_are_ignored_and_metadata_is_accepted(requester: User, org: Org) -> None:
    response = ask(
        weep_client(requester),
        "payments-batch",
        metadata={"hostname": "laptop", "weep_version": "0.3.26", "os": {"name": "linux"}},
        user_role=False,
        something_new=[1, 2],
    )
    assert response.status_code == 200


def test_the_body_is_json_whatever_the_content_type(requester: User, org: Org) -> None:
    body = json.dumps({"requested_role": "payments-batch"})
    assert get_credentials(weep_client(requester), body, "text/plain").status_code == 200


def test_a_role_arn_naming_no_possible_account_is_refused_and_audited(
    requester: User, org: Org
) -> None:
    assert_weep_error(ask(weep_client(requester), "arn:aws:iam::1234567890123:role/x"), 403, "900")
    refused = CredentialIssuance.objects.get()
    assert (refused.outcome, refused.account_id) == ("denied", "")


def test_aws_refusing_is_902_and_audited_as_failed(requester: User, org: Org) -> None:
    aws.on_hub_call("before-call.sts.AssumeRole", fail_assume_role)
    body = assert_weep_error(ask(weep_client(requester), "payments-batch"), 403, "902")
    assert "not authorized to assume" in body["message"]
    failed = CredentialIssuance.objects.get()
    assert (failed.kind, failed.outcome) == ("cli", "failed")


@pytest.mark.usefixtures("rate_clock_stopped")
def test_too_many_requests_is_429_with_retry_after(
    requester: User, org: Org, settings: Any
) -> None:
    settings.IAMPORTAL_CREDENTIAL_RATE_LIMIT = 1
    client = weep_client(requester)
    assert ask(client, "payments-batch").status_code == 200
    refused = ask(client, "payments-batch")
    body = assert_weep_error(refused, 429, "rate_limited")
    assert refused["Retry-After"] == "60"
    assert body["requested_role"] == "payments-batch"
    assert CredentialIssuance.objects.filter(outcome="rate_limited").count() == 1


def test_no_ip_restrictions_is_passed_on_only_when_the_server_allows_it(
    requester: User, org: Org, settings: Any
) -> None:
    settings.IAMPORTAL_CREDENTIAL_ALLOWED_CIDRS = [ip_network("10.0.0.0/8")]
    client = weep_client(requester)
    ask(client, "payments-batch", no_ip_restrictions=True)
    settings.IAMPORTAL_ALLOW_NO_IP_RESTRICTIONS = True
    ask(client, "payments-batch", no_ip_restrictions=True)
    ask(client, "payments-batch", no_ip_restrictions=False)
    restricted = list(
        CredentialIssuance.objects.order_by("id").values_list("ip_restricted", flat=True)
    )
    assert restricted == [True, False, True]


def test_issuance_is_audited_without_the_secret(requester: User, org: Org) -> None:
    response = ask(weep_client(requester), "payments-batch")
    credentials = response.json()["Credentials"]
    row = CredentialIssuance.objects.get()
    assert row.user == requester
    assert row.user_email == "alice@example.com"
    assert row.role_arn == org.arn("prod/payments-batch")
    assert row.account_id == PROD
    assert row.kind == CredentialIssuance.Kind.CLI
    assert row.outcome == CredentialIssuance.Outcome.ISSUED
    assert row.source_ip == WEEP_ADDRESS
    assert row.user_agent == WEEP_AGENT
    assert row.expiration is not None
    assert int(row.expiration.timestamp()) == credentials["Expiration"]
    for secret in (credentials["SecretAccessKey"], credentials["SessionToken"]):
        for model in apps.get_models():
            for values in model._default_manager.values_list():
                assert all(secret not in str(value) for value in values), model.__name__


def test_refusals_are_audited_with_the_address_and_agent(requester: User, org: Org) -> None:
    client = weep_client(requester)
    ask(client, "service/payments-api")
    ask(client, org.arn("prod/break-glass"))
    rows = list(CredentialIssuance.objects.order_by("id"))
    assert [row.error[:3] for row in rows] == ["901", "903"]
    for row in rows:
        assert (row.kind, row.outcome) == ("cli", "denied")
        assert (row.source_ip, row.user_agent, row.user) == (WEEP_ADDRESS, WEEP_AGENT, requester)
    assert rows[1].role_arn == org.arn("prod/break-glass")


# --- GET /api/v1/get_roles and /api/v2/get_roles ----------------------------------------------


def test_v1_roles_are_a_sorted_array_of_console_arns_by_default(requester: User, org: Org) -> None:
    client = weep_client(requester)
    console = [
        org.arn("prod/payments-api"),
        org.arn("prod/web-frontend"),
        org.arn("dev/payments-api"),
    ]
    for query in ("", "?all=false", "?all=1"):
        response = client.get(f"/api/v1/get_roles{query}")
        assert response.status_code == 200
        assert response.json() == sorted(console)
    everything = client.get("/api/v1/get_roles?all=true").json()
    assert everything == sorted([*console, org.arn("prod/payments-batch")])
    assert all(isinstance(arn, str) for arn in everything)


def test_v2_roles_have_the_envelope_and_fields_weep_reads(requester: User, org: Org) -> None:
    client = weep_client(requester)
    body = client.get("/api/v2/get_roles?all=true").json()
    assert set(body) == {"status", "status_code", "data"}
    assert body["status"] == "success"
    assert body["status_code"] == 200 and type(body["status_code"]) is int
    assert list(body["data"]) == ["roles"]
    roles = body["data"]["roles"]
    assert [role["arn"] for role in roles] == client.get("/api/v1/get_roles?all=true").json()
    batch = next(role for role in roles if role["role_name"] == "payments-batch")
    assert batch == {
        "arn": org.arn("prod/payments-batch"),
        "account_id": PROD,
        "account_friendly_name": "acme-prod",
        "role_name": "payments-batch",
        "apps": {"app_details": []},
    }
    dev = next(role for role in roles if role["account_id"] == DEV)
    assert dev["account_friendly_name"] == "acme-dev"
    console = client.get("/api/v2/get_roles").json()["data"]["roles"]
    assert "payments-batch" not in {role["role_name"] for role in console}
    assert len(console) == len(roles) - 1


def test_credentials_and_v2_roles_are_byte_for_byte_what_the_schema_describes(
    requester: User, org: Org
) -> None:
    """The views build their answers directly; the serializers in the schema must
    produce exactly the same bytes from them."""
    client = weep_client(requester)
    answers = [
        (CliCredentialIssueApi.OutputSerializer, ask(client, org.arn("prod/payments-api"))),
        (CliRoleDetailListApi.OutputSerializer, client.get("/api/v2/get_roles?all=true")),
    ]
    for serializer, response in answers:
        assert response.status_code == 200
        rendered = JSONRenderer().render(serializer(response.json()).data)
        assert rendered == response.content


# --- GET /api/v2/get_resource_url ----------------------------------------------------------------


def resource_url(client: Client, arn: str | None) -> Any:
    return client.get("/api/v2/get_resource_url", {} if arn is None else {"arn": arn})


def assert_web_error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"status", "status_code", "code", "message", "errors", "request_id"}
    assert body["status"] == "error"
    assert body["status_code"] == status
    assert isinstance(body["code"], str)
    assert isinstance(body["errors"], list) and all(isinstance(e, str) for e in body["errors"])
    assert body["errors"]
    return body


def test_a_role_arn_links_to_its_role_page(reviewer: User, org: Org) -> None:
    response = resource_url(weep_client(reviewer), org.arn("prod/payments-api"))
    assert response.status_code == 200
    assert response.json() == {
        "status": "success",
        "status_code": 200,
        "data": {"url": f"/accounts/{PROD}/roles/payments-api/"},
    }


def test_inventory_resources_link_to_their_pages(reviewer: User, org: Org) -> None:
    now = timezone.now()
    common = {"account": org.prod, "content_hash": "x", "synced_at": now}
    bucket = CloudResource.objects.create(
        arn="arn:aws:s3:::invoices", name="invoices", type="s3", **common
    )
    queue = CloudResource.objects.create(
        arn=f"arn:aws:sqs:us-east-1:{PROD}:orders", name="orders", type="sqs", **common
    )
    policy = ManagedPolicy.objects.create(
        arn=f"arn:aws:iam::{PROD}:policy/read-invoices", name="read-invoices", **common
    )
    client = weep_client(reviewer)
    expected = {
        bucket.arn: f"/resources/{bucket.pk}/",
        "arn:aws:s3:::invoices/2026/01/report.csv": f"/resources/{bucket.pk}/",
        queue.arn: f"/resources/{queue.pk}/",
        policy.arn: f"/policies/{policy.pk}/",
    }
    for arn, url in expected.items():
        assert resource_url(client, arn).json()["data"]["url"] == url


def test_users_and_databases_link_to_their_pages_through_the_policies_entries(
    reviewer: User, org: Org
) -> None:
    common = {"account": org.prod, "content_hash": "x", "synced_at": timezone.now()}
    IamUser.objects.create(arn=f"arn:aws:iam::{PROD}:user/deploy-bot", name="deploy-bot", **common)
    database = Database.objects.create(
        arn=f"arn:aws:rds:us-east-1:{PROD}:db:payments-db",
        name="payments-db",
        type="rds-instance",
        region="us-east-1",
        **common,
    )
    client = weep_client(reviewer)
    before = resource_url(client, database.arn)
    inventory_entries_refresh(account=org.prod)

    assert before.status_code == 404
    assert resource_url(client, f"arn:aws:iam::{PROD}:user/deploy-bot").json()["data"] == {
        "url": f"/accounts/{PROD}/users/deploy-bot/"
    }
    assert resource_url(client, database.arn).json()["data"] == {
        "url": f"/databases/{database.pk}/"
    }


def test_unknown_or_malformed_arns_are_clear_errors(reviewer: User, org: Org) -> None:
    client = weep_client(reviewer)
    assert "required" in assert_web_error(resource_url(client, None), 400)["errors"][0]
    assert_web_error(resource_url(client, ""), 400)
    assert_web_error(resource_url(client, "payments-api"), 400)
    assert_web_error(resource_url(client, "arn:aws:iam::" + "1" * 3000), 400)
    missing = assert_web_error(
        resource_url(client, f"arn:aws:iam::{PROD}:role/does-not-exist"), 404
    )
    assert "not found" in missing["errors"][0]
    assert_web_error(resource_url(client, "arn:aws:s3:::no-such-bucket"), 404)
    unsupported = assert_web_error(
        resource_url(client, f"arn:aws:ec2:us-east-1:{PROD}:instance/i-0123"), 404
    )
    assert "not supported" in unsupported["errors"][0]


# --- GET /api/v1/policies/typeahead ------------------------------------------------------------


def typeahead(client: Client, **params: Any) -> Any:
    return client.get("/api/v1/policies/typeahead", params)


def test_accounts_are_titled_name_and_number(reviewer: User, org: Org) -> None:
    client = weep_client(reviewer)
    everything = typeahead(client, resource="account", search="")
    assert everything.status_code == 200
    assert everything.json() == [
        {"title": f"acme-dev ({DEV})"},
        {"title": f"acme-prod ({PROD})"},
    ]
    assert typeahead(client, resource="account", search="PROD").json() == [
        {"title": f"acme-prod ({PROD})"}
    ]
    assert typeahead(client, resource="account", search=DEV[:5]).json() == [
        {"title": f"acme-dev ({DEV})"}
    ]


def test_role_arns_match_case_insensitively_across_the_inventory(reviewer: User, org: Org) -> None:
    client = weep_client(reviewer)
    found = typeahead(client, resource="iam_arn", search="PAYMENTS").json()
    assert found == [
        {"title": org.arn("prod/payments-api")},
        {"title": org.arn("prod/payments-batch")},
        {"title": org.arn("dev/payments-api")},
    ]
    in_account = typeahead(
        client, resource="iam_arn", search=f"arn:aws:iam::{PROD}:role/", limit="5000"
    ).json()
    assert {item["title"] for item in in_account} == {
        role.arn for key, role in org.roles.items() if key.startswith("prod/")
    }


def test_the_limit_defaults_to_20_and_is_capped_at_100(reviewer: User, org: Org) -> None:
    IamRole.objects.bulk_create(
        IamRole(
            account=org.dev,
            arn=f"arn:aws:iam::{DEV}:role/bulk-{n:03}",
            name=f"bulk-{n:03}",
            content_hash="x",
            synced_at=timezone.now(),
        )
        for n in range(120)
    )
    client = weep_client(reviewer)
    assert len(typeahead(client, resource="iam_arn", search="bulk").json()) == 20
    assert len(typeahead(client, resource="iam_arn", search="bulk", limit="3").json()) == 3
    assert len(typeahead(client, resource="iam_arn", search="bulk", limit="5000").json()) == 100


@pytest.mark.parametrize(
    "params",
    [
        {"resource": "s3_bucket", "search": "x"},
        {"search": "x"},
        {"resource": "iam_arn", "search": "x" * 201},
        {"resource": "iam_arn", "limit": "many"},
        {"resource": "iam_arn", "limit": "0"},
        {"resource": "iam_arn", "limit": ""},
        {"resource": "iam_arn", "limit": "-5"},
        {"resource": "account", "limit": "9" * 40},
    ],
)
def test_bad_typeahead_input_is_400(reviewer: User, org: Org, params: dict[str, str]) -> None:
    body = assert_web_error(typeahead(weep_client(reviewer), **params), 400)
    if "resource" not in params or params["resource"] == "s3_bucket":
        assert "resource must be one of account, iam_arn" in body["message"]


# --- who may call what ----------------------------------------------------------------------------

ENDPOINTS = ["credentials", "roles_v1", "roles_v2", "resource_url", "typeahead"]


def call(client: Client, endpoint: str, org: Org) -> Any:
    if endpoint == "credentials":
        return ask(client, "arn:aws:iam::111111111111:role/break-glass")
    if endpoint == "roles_v1":
        return client.get("/api/v1/get_roles?all=true")
    if endpoint == "roles_v2":
        return client.get("/api/v2/get_roles?all=true")
    if endpoint == "resource_url":
        return resource_url(client, org.arn("prod/payments-api"))
    return typeahead(client, resource="account")


CAST_ROLES = {
    # who: (eligible role count with all=true, may use break-glass)
    "requester": (4, False),
    "reviewer": (0, False),
    "admin_user": (1, True),
    "outsider": (0, False),
}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("who", list(CAST_ROLES))
def test_every_signed_in_user_gets_exactly_their_own_answer(
    request: pytest.FixtureRequest, org: Org, who: str, endpoint: str
) -> None:
    user: User = request.getfixturevalue(who)
    role_count, break_glass = CAST_ROLES[who]
    response = call(weep_client(user), endpoint, org)
    if endpoint == "credentials":
        if break_glass:
            assert response.status_code == 200
            assert response.json()["Credentials"]["RoleArn"] == org.arn("prod/break-glass")
        else:
            assert_weep_error(response, 403, "903")
    elif endpoint == "roles_v1":
        assert response.status_code == 200
        assert len(response.json()) == role_count
    elif endpoint == "roles_v2":
        assert response.status_code == 200
        assert len(response.json()["data"]["roles"]) == role_count
    else:
        assert response.status_code == 200


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_anonymous_callers_are_told_to_sign_in(anonymous: Client, org: Org, endpoint: str) -> None:
    response = call(anonymous, endpoint, org)
    assert response.status_code == 401
    assert response["WWW-Authenticate"]
    body = response.json()
    assert body["code"] == "invalid_jwt"
    assert body["message"]
    assert not CredentialIssuance.objects.exists()


def test_admins_get_break_glass_credentials_audited_as_theirs(admin_user: User, org: Org) -> None:
    response = ask(weep_client(admin_user), "break-glass")
    assert response.status_code == 200
    row = CredentialIssuance.objects.get()
    assert (row.user, row.outcome, row.role_arn) == (
        admin_user,
        "issued",
        org.arn("prod/break-glass"),
    )


def test_get_credentials_only_accepts_post(requester: User, org: Org) -> None:
    response = weep_client(requester).get("/api/v1/get_credentials")
    assert response.status_code == 405
    assert response.json()["code"] == "405"
