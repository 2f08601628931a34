"""The Databases page and Get a password, from the page and the REST API, for
the whole cast: who sees which databases, who gets a token, what is audited,
and that the token is never stored or logged."""

from __future__ import annotations

import re
from io import StringIO
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Database, IamRole
from brokering.models import CredentialIssuance
from requests_app.models import PolicyTemplate
from tests.factories import PROD, Org, Served, api_client, client_for

pytestmark = pytest.mark.django_db

PAYMENTS_DB_ID = "db-PAYMENTS0123456789ABCDEFGHIJ"


def _database(org: Org, name: str, **fields: Any) -> Database:
    values: dict[str, Any] = {
        "type": Database.Type.RDS_INSTANCE,
        "region": "us-east-1",
        "engine": "postgres",
        "endpoint": f"{name}.abc123.us-east-1.rds.amazonaws.com",
        "port": 5432,
        "iam_auth": True,
        "resource_id": f"db-{name.upper().replace('-', '')}0000",
        "status": "available",
    }
    values.update(fields)
    return Database.objects.create(
        account=org.prod,
        arn=f"arn:aws:rds:us-east-1:{PROD}:db:{name}",
        name=name,
        content_hash="x",
        synced_at=timezone.now(),
        **values,
    )


def _allow_connect(role: IamRole, *resources: str) -> None:
    role.inline_policies = {
        "db": {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "rds-db:connect", "Resource": list(resources)}
            ],
        }
    }
    role.save(update_fields=["inline_policies"])


@pytest.fixture
def dbs(org: Org) -> dict[str, Database]:
    """payments-db (postgres), which prod payments-api may connect to as app_user
    and as any `report_*` user; reporting-db (mysql), which no role may; a
    Redshift cluster."""
    found = {
        "payments": _database(org, "payments-db", resource_id=PAYMENTS_DB_ID),
        "reporting": _database(org, "reporting-db", engine="mysql", port=3306),
        "warehouse": _database(
            org,
            "warehouse",
            type=Database.Type.REDSHIFT,
            engine="redshift",
            port=5439,
            iam_auth=None,
            resource_id="",
        ),
    }
    prefix = f"arn:aws:rds-db:us-east-1:{PROD}:dbuser:{PAYMENTS_DB_ID}"
    _allow_connect(org.roles["prod/payments-api"], f"{prefix}/app_user", f"{prefix}/report_*")
    return found


@pytest.fixture
def db_template(db: None) -> PolicyTemplate:
    return PolicyTemplate.objects.create(
        name="Read-only database access",
        parameters=[
            {"name": "region", "label": "Region"},
            {"name": "account_id", "label": "Account"},
            {"name": "db_resource_id", "label": "Resource id"},
            {"name": "db_user", "label": "User"},
        ],
        document='{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", '
        '"Action": "rds-db:connect", "Resource": "arn:aws:rds-db:{{region}}:{{account_id}}:'
        'dbuser:{{db_resource_id}}/{{db_user}}"}]}',
    )


def get_password(
    client: Client, database: Database, role: IamRole, db_user: str, **extra: Any
) -> Any:
    url = reverse("database_password", args=[database.pk])
    return client.post(url, {"role": role.pk, "db_user": db_user}, **extra)


def token_of(response: Any) -> str:
    found = re.search(r'id="db-token-\d+">([^<]+)</pre>', response.content.decode())
    assert found is not None, response.content.decode()[:3000]
    return found.group(1).replace("&amp;", "&")


def card(page: str, database: Database) -> str:
    """The part of the Databases page about one database."""
    start = page.index(f'id="database-{database.pk}"')
    end = page.find('<div class="card"', start)
    return page[start : end if end >= 0 else len(page)]


# --- the page ---------------------------------------------------------------------


def test_the_page_offers_a_password_where_a_role_may_connect_and_the_template_where_none_may(
    requester: User, org: Org, dbs: dict[str, Database], db_template: PolicyTemplate
) -> None:
    page = client_for(requester).get(reverse("database_list"))
    assert page.status_code == 200
    text = page.content.decode()
    assert "payments-db" in text and "reporting-db" in text and "warehouse" in text
    payments = card(text, dbs["payments"])
    assert "Get a password" in payments and "app_user" in payments and "report_*" in payments
    reporting = card(text, dbs["reporting"])
    assert "Get a password" not in reporting
    role = org.roles["prod/payments-api"]
    link = (
        f"/requests/new/{role.pk}/permissions/?template={db_template.pk}&amp;region=us-east-1"
        f"&amp;account_id={PROD}&amp;db_resource_id={dbs['reporting'].resource_id}"
    )
    assert link in reporting
    assert "get-cluster-credentials" in text  # Redshift: what is supported is said


def test_the_template_link_opens_the_wizard_with_the_database_filled_in(
    requester: User, org: Org, dbs: dict[str, Database], db_template: PolicyTemplate
) -> None:
    role = org.roles["prod/payments-api"]
    page = client_for(requester).get(
        reverse("request_permissions", args=[role.pk]),
        {
            "template": str(db_template.pk),
            "region": "eu-west-1",
            "account_id": PROD,
            "db_resource_id": dbs["reporting"].resource_id,
        },
    )
    assert page.status_code == 200
    text = page.content.decode()
    assert f'value="{dbs["reporting"].resource_id}"' in text
    assert 'value="eu-west-1"' in text


def test_without_an_rds_template_the_page_offers_the_wizards_database_permission(
    requester: User, org: Org, dbs: dict[str, Database]
) -> None:
    text = client_for(requester).get(reverse("database_list")).content.decode()
    role = org.roles["prod/payments-api"]
    assert f"/requests/new/{role.pk}/permissions/?service=rds-db" in text


def test_outsiders_see_no_database_and_anonymous_is_sent_to_sign_in(
    outsider: User, anonymous: Client, dbs: dict[str, Database]
) -> None:
    page = client_for(outsider).get(reverse("database_list"))
    assert page.status_code == 200
    assert "payments-db" not in page.content.decode()
    answer = anonymous.get(reverse("database_list"))
    assert answer.status_code == 302 and answer["Location"].startswith(reverse("login"))


# --- Get a password ----------------------------------------------------------------


def test_a_password_is_an_rds_token_for_the_user_shown_once_and_audited(
    requester: User, org: Org, dbs: dict[str, Database]
) -> None:
    role = org.roles["prod/payments-api"]
    response = get_password(client_for(requester), dbs["payments"], role, "app_user")
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"] or "no-cache" in response["Cache-Control"]
    token = token_of(response)
    host, _, query = token.partition("/?")
    assert host == "payments-db.abc123.us-east-1.rds.amazonaws.com:5432"
    params = parse_qs(query)
    assert params["Action"] == ["connect"] and params["DBUser"] == ["app_user"]
    assert params["X-Amz-Expires"] == ["900"]
    assert "X-Amz-Signature" in params
    text = response.content.decode()
    assert "PGPASSWORD=" in text and "sslmode=verify-full" in text
    [issued] = CredentialIssuance.objects.all()
    assert issued.kind == CredentialIssuance.Kind.DATABASE
    assert issued.outcome == CredentialIssuance.Outcome.ISSUED
    assert issued.role_arn == role.arn and issued.user == requester
    assert issued.target == f"{dbs['payments'].arn} as app_user"
    stored = [str(v) for v in CredentialIssuance.objects.values().get().values()]
    assert not [v for v in stored if params["X-Amz-Signature"][0] in v]


def test_a_user_a_pattern_allows_is_typed_in_and_mysql_gets_its_command(
    requester: User, org: Org, dbs: dict[str, Database]
) -> None:
    role = org.roles["prod/payments-api"]
    response = get_password(client_for(requester), dbs["payments"], role, "report_daily")
    assert response.status_code == 200
    assert parse_qs(token_of(response).partition("/?")[2])["DBUser"] == ["report_daily"]


def test_htmx_gets_only_the_password_fragment(
    requester: User, org: Org, dbs: dict[str, Database]
) -> None:
    role = org.roles["prod/payments-api"]
    response = get_password(
        client_for(requester), dbs["payments"], role, "app_user", HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    text = response.content.decode()
    assert text.lstrip().startswith(f'<div id="password-{dbs["payments"].pk}"')
    assert "<nav" not in text


@pytest.mark.parametrize("db_user", ["admin", "report", "app_user2"])
def test_a_database_user_the_policies_do_not_allow_is_refused_and_audited(
    requester: User, org: Org, dbs: dict[str, Database], db_user: str
) -> None:
    role = org.roles["prod/payments-api"]
    response = get_password(client_for(requester), dbs["payments"], role, db_user)
    assert response.status_code == 400
    assert "do not allow rds-db:connect" in response.content.decode()
    [refused] = CredentialIssuance.objects.all()
    assert refused.outcome == CredentialIssuance.Outcome.DENIED
    assert refused.target == f"{dbs['payments'].arn} as {db_user}"


@pytest.mark.parametrize("db_user", ["", "a b", "x" * 64, "bob';--", "über"])
def test_a_malformed_database_user_is_a_form_error(
    requester: User, org: Org, dbs: dict[str, Database], db_user: str
) -> None:
    role = org.roles["prod/payments-api"]
    response = get_password(client_for(requester), dbs["payments"], role, db_user)
    assert response.status_code == 400
    assert CredentialIssuance.objects.count() == 0


def test_a_role_of_the_user_without_connect_is_refused(
    admin_user: User, org: Org, dbs: dict[str, Database]
) -> None:
    # admin may use prod break-glass, which has no rds-db:connect
    response = get_password(
        client_for(admin_user), dbs["payments"], org.roles["prod/break-glass"], "app_user"
    )
    assert response.status_code == 400
    assert CredentialIssuance.objects.get().outcome == CredentialIssuance.Outcome.DENIED


def _attach(role: IamRole, *names: str) -> None:
    role.managed_policies = [
        {"name": name, "arn": f"arn:aws:iam::aws:policy/{name}"} for name in names
    ]
    role.save(update_fields=["managed_policies"])


def test_an_aws_managed_policy_iamportal_knows_lets_a_role_connect_as_any_user(
    admin_user: User, org: Org, dbs: dict[str, Database]
) -> None:
    # break-glass has no policy of its own that allows rds-db:connect.
    role = org.roles["prod/break-glass"]
    _attach(role, "PowerUserAccess")
    client = client_for(admin_user)
    payments = card(client.get(reverse("database_list")).content.decode(), dbs["payments"])
    assert "Get a password" in payments and "break-glass" in payments
    response = get_password(client, dbs["payments"], role, "app_user")
    assert response.status_code == 200, response.content.decode()[:2000]
    assert CredentialIssuance.objects.get().outcome == CredentialIssuance.Outcome.ISSUED


def test_an_aws_managed_policy_whose_document_iamportal_lacks_grants_nothing(
    admin_user: User, org: Org, dbs: dict[str, Database]
) -> None:
    role = org.roles["prod/break-glass"]
    _attach(role, "AmazonRDSFullAccess", "IAMFullAccess")
    client = client_for(admin_user)
    page = client.get(reverse("database_list")).content.decode()
    assert "AdministratorAccess and PowerUserAccess" in page  # the limit is said
    assert "Get a password" not in card(page, dbs["payments"])
    assert get_password(client, dbs["payments"], role, "app_user").status_code == 400


def test_a_role_the_user_may_not_use_is_404_even_with_connect(
    admin_user: User, org: Org, dbs: dict[str, Database]
) -> None:
    response = get_password(
        client_for(admin_user), dbs["payments"], org.roles["prod/payments-api"], "app_user"
    )
    assert response.status_code == 404
    [refused] = CredentialIssuance.objects.all()
    assert refused.outcome == CredentialIssuance.Outcome.DENIED
    assert refused.target == f"{dbs['payments'].arn} as app_user"


@pytest.mark.parametrize("who", ["outsider", "reviewer"])
def test_users_without_a_role_in_the_account_get_404_and_nothing(
    who: str, request: pytest.FixtureRequest, org: Org, dbs: dict[str, Database]
) -> None:
    user = request.getfixturevalue(who)
    response = get_password(
        client_for(user), dbs["payments"], org.roles["prod/payments-api"], "app_user"
    )
    assert response.status_code == 404
    assert not CredentialIssuance.objects.filter(outcome="issued").exists()


def test_anonymous_is_sent_to_sign_in(
    anonymous: Client, org: Org, dbs: dict[str, Database]
) -> None:
    response = get_password(anonymous, dbs["payments"], org.roles["prod/payments-api"], "app_user")
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert CredentialIssuance.objects.count() == 0


def test_redshift_and_unknown_databases_get_no_password(
    requester: User, org: Org, dbs: dict[str, Database]
) -> None:
    client = client_for(requester)
    role = org.roles["prod/payments-api"]
    assert get_password(client, dbs["warehouse"], role, "app_user").status_code == 400
    missing = client.post(
        reverse("database_password", args=[999999]), {"role": role.pk, "db_user": "a"}
    )
    assert missing.status_code == 404


def test_get_a_password_is_rate_limited_like_any_issuance(
    requester: User, org: Org, dbs: dict[str, Database], settings: Any
) -> None:
    settings.IAMPORTAL_CREDENTIAL_RATE_LIMIT = 1
    client = client_for(requester)
    role = org.roles["prod/payments-api"]
    assert get_password(client, dbs["payments"], role, "app_user").status_code == 200
    limited = get_password(client, dbs["payments"], role, "app_user")
    assert limited.status_code == 429 and int(limited["Retry-After"]) > 0


# --- the REST API --------------------------------------------------------------------


def test_the_api_lists_the_databases_with_the_roles_that_may_connect(
    requester: User, org: Org, dbs: dict[str, Database]
) -> None:
    answer = api_client(requester).get("/api/v1/databases")
    assert answer.status_code == 200
    by_name = {item["name"]: item for item in answer.json()}
    assert set(by_name) == {"payments-db", "reporting-db", "warehouse"}
    [access] = by_name["payments-db"]["access"]
    assert access["role_arn"] == org.roles["prod/payments-api"].arn
    assert access["db_users"] == ["app_user"] and access["patterns"] == ["report_*"]
    assert by_name["reporting-db"]["access"] == []
    assert by_name["warehouse"]["token_supported"] is False


def test_the_api_makes_a_token_with_commands(
    requester: User, org: Org, dbs: dict[str, Database]
) -> None:
    answer = api_client(requester).post(
        f"/api/v1/databases/{dbs['payments'].pk}/token",
        {"role": "payments-api", "db_user": "app_user"},
        content_type="application/json",
    )
    # "payments-api" matches prod and dev: the caller must say which
    assert answer.status_code == 409
    answer = api_client(requester).post(
        f"/api/v1/databases/{dbs['payments'].pk}/token",
        {"role": org.roles["prod/payments-api"].arn, "db_user": "app_user"},
        content_type="application/json",
    )
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert answer["Cache-Control"] == "no-store"
    assert "DBUser=app_user" in body["token"] and body["port"] == 5432
    assert body["token"] in body["commands"]["psql"]
    issued = CredentialIssuance.objects.get(outcome="issued")
    assert issued.kind == "database" and issued.target.endswith(" as app_user")


def test_the_api_refuses_a_database_user_the_role_may_not_use(
    requester: User, org: Org, dbs: dict[str, Database]
) -> None:
    answer = api_client(requester).post(
        f"/api/v1/databases/{dbs['payments'].pk}/token",
        {"role": org.roles["prod/payments-api"].arn, "db_user": "admin"},
        content_type="application/json",
    )
    assert answer.status_code == 400
    assert "do not allow rds-db:connect" in answer.json()["db_user"][0]


@pytest.mark.parametrize("who", ["outsider", "reviewer"])
def test_the_api_answers_404_to_users_without_a_role_there(
    who: str, request: pytest.FixtureRequest, org: Org, dbs: dict[str, Database]
) -> None:
    user = request.getfixturevalue(who)
    client = api_client(user)
    assert client.get("/api/v1/databases").json() == []
    answer = client.post(
        f"/api/v1/databases/{dbs['payments'].pk}/token",
        {"role": org.roles["prod/payments-api"].arn, "db_user": "app_user"},
        content_type="application/json",
    )
    assert answer.status_code == 404
    assert not CredentialIssuance.objects.filter(outcome="issued").exists()


def test_the_api_answers_401_to_anonymous(anonymous: Client, dbs: dict[str, Database]) -> None:
    assert anonymous.get("/api/v1/databases").status_code == 401
    answer = anonymous.post(
        f"/api/v1/databases/{dbs['payments'].pk}/token",
        {"role": "x", "db_user": "app_user"},
        content_type="application/json",
    )
    assert answer.status_code == 401


# --- never logged ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "log_output", [False, True], ids=["as-configured", "libraries-at-debug"], indirect=True
)
def test_no_token_or_credential_reaches_the_log(
    log_output: StringIO, requester: User, org: Org, dbs: dict[str, Database]
) -> None:
    browser = Served()
    browser.force_login(requester)
    role = org.roles["prod/payments-api"]
    page = browser.post(
        reverse("database_password", args=[dbs["payments"].pk]),
        {"role": role.pk, "db_user": "app_user"},
    )
    token = token_of(page)
    params = parse_qs(urlsplit("https://" + token).query)
    script = api_client(requester)
    body = script.post(
        f"/api/v1/databases/{dbs['payments'].pk}/token",
        {"role": role.arn, "db_user": "app_user"},
        content_type="application/json",
    ).json()
    secrets = {
        "page token": token,
        "page signature": params["X-Amz-Signature"][0],
        "page session token": params["X-Amz-Security-Token"][0],
        "api token": body["token"],
    }
    output = log_output.getvalue()
    assert "/databases/" in output  # the request lines are there
    assert {name for name, secret in secrets.items() if secret in output} == set()
