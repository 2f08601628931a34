"""My roles, the CLI snippets and environment credentials, and the role page's
access sections, for every member of the cast."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from brokering.models import CredentialIssuance
from brokering.services import credentials_issue
from tests.factories import PASSWORD, Org, client_for

HTMX = {"HX-Request": "true"}
ARN = re.compile(r"arn:aws:iam::\d{12}:role/[\w+=,.@/-]+")


def listed_arns(html: str) -> set[str]:
    return set(ARN.findall(html))


def shown_role_ids(response: Any) -> list[int]:
    return [row.role.id for group in response.context["groups"] for row in group.rows]


def role_pages(org: Org, key: str) -> dict[str, tuple[str, str]]:
    """Every brokering page and action for one role: name -> (method, url)."""
    role_id = org.roles[key].pk
    return {
        "my roles": ("get", reverse("my_roles")),
        "cli snippets": ("get", reverse("my_role_cli", args=[role_id])),
        "environment credentials": ("post", reverse("my_role_credentials", args=[role_id])),
        "console button": ("post", reverse("role_console", args=[role_id])),
        "weep console": ("get", reverse("role_console_login", args=[org.arn(key)])),
    }


def issue(user: User, org: Org, key: str, kind: str = "cli") -> None:
    credentials_issue(user=user, role=org.roles[key], kind=kind, source_ip="10.1.2.3")


# --- authorization matrix ------------------------------------------------------------


def test_it_sends_anonymous_visitors_of_every_page_to_the_login_page(
    anonymous: Client, org: Org
) -> None:
    for page, (method, url) in role_pages(org, "prod/payments-api").items():
        response = getattr(anonymous, method)(url)
        assert response.status_code == 302, page
        assert response["Location"].startswith(reverse("login") + "?next="), page
    assert not CredentialIssuance.objects.exists()


@pytest.mark.parametrize("member", ["reviewer", "outsider", "admin_user"])
def test_it_answers_404_for_every_action_on_a_role_the_user_may_not_use(
    org: Org, member: str, request: pytest.FixtureRequest
) -> None:
    client = client_for(request.getfixturevalue(member))
    for page, (method, url) in role_pages(org, "prod/payments-api").items():
        if page == "my roles":
            continue
        response = getattr(client, method)(url)
        assert response.status_code == 404, page
        html = response.content.decode()
        assert "acme-prod" not in html, page
        assert "team-payments" not in html, page
    assert not CredentialIssuance.objects.filter(outcome="issued").exists()


def test_every_page_and_action_works_for_a_role_the_user_may_use(
    requester: User, org: Org, settings: Any
) -> None:
    settings.IAMPORTAL_FEDERATION_URL = "http://127.0.0.1:9/unreachable"
    client = client_for(requester)
    client.defaults["HTTP_SEC_FETCH_SITE"] = "none"  # opened directly, as Weep does
    expected = {
        "my roles": 200,
        "cli snippets": 200,
        "environment credentials": 200,
        # No federation endpoint answers here: the sign-in fails after issuance.
        "console button": 502,
        "weep console": 502,
    }
    for page, (method, url) in role_pages(org, "prod/payments-api").items():
        assert getattr(client, method)(url).status_code == expected[page], page


@pytest.mark.parametrize(
    ("member", "keys"),
    [
        (
            "requester",
            {"prod/payments-api", "prod/payments-batch", "prod/web-frontend", "dev/payments-api"},
        ),
        ("admin_user", {"prod/break-glass"}),
        ("reviewer", set()),
        ("outsider", set()),
    ],
)
def test_my_roles_lists_exactly_the_roles_the_user_may_use(
    org: Org, member: str, keys: set[str], request: pytest.FixtureRequest
) -> None:
    response = client_for(request.getfixturevalue(member)).get(reverse("my_roles"))

    assert response.status_code == 200
    assert sorted(shown_role_ids(response)) == sorted(org.roles[key].pk for key in keys)
    assert listed_arns(response.content.decode()) == {org.arn(key) for key in keys}


def test_my_roles_explains_how_access_is_granted_when_there_is_none(
    outsider: User, org: Org
) -> None:
    html = client_for(outsider).get(reverse("my_roles")).content.decode()
    assert "You may not use any AWS role yet" in html
    assert "<code>iamportal-authorized</code>" in html
    assert "<code>iamportal-authorized-cli-only</code>" in html
    assert "access rule" in html
    assert "administrator" in html


# --- landing ---------------------------------------------------------------------------


def test_my_roles_is_where_a_visitor_lands_after_signing_in(
    anonymous: Client, requester: User, org: Org
) -> None:
    bounced = anonymous.get("/")
    assert bounced["Location"] == reverse("login") + "?next=/"

    signed_in = anonymous.post(
        bounced["Location"], {"username": "alice", "password": PASSWORD, "next": "/"}
    )
    assert signed_in["Location"] == "/"

    page = anonymous.get("/")
    assert page.resolver_match.url_name == "my_roles"
    assert "<h1>My roles</h1>" in page.content.decode()


def test_the_dashboard_moved_and_my_roles_leads_the_navigation(requester: User) -> None:
    client = client_for(requester)
    assert reverse("my_roles") == "/"
    assert reverse("dashboard") == "/dashboard/"
    assert client.get("/dashboard/").status_code == 200
    nav = client.get("/").content.decode().split('<nav class="nav"')[1].split("</nav>")[0]
    first_link = re.search(r'<a href="([^"]+)"[^>]*>([^<]+)</a>', nav)
    assert first_link is not None
    assert first_link.groups() == ("/", "My roles")
    assert 'aria-current="page">My roles' in nav


# --- grouping, search and buttons ---------------------------------------------------


def test_my_roles_groups_roles_by_account_with_recently_used_first(
    requester: User, org: Org
) -> None:
    issue(requester, org, "dev/payments-api")

    response = client_for(requester).get(reverse("my_roles"))

    groups = [
        (g.title, g.account_id, [r.role.arn for r in g.rows]) for g in response.context["groups"]
    ]
    assert groups == [
        ("Recently used", "", [org.arn("dev/payments-api")]),
        (
            "acme-prod",
            "111111111111",
            sorted(
                [
                    org.arn("prod/payments-api"),
                    org.arn("prod/payments-batch"),
                    org.arn("prod/web-frontend"),
                ]
            ),
        ),
    ]
    html = response.content.decode()
    assert html.index("Recently used") < html.index("acme-prod")
    assert '<span class="muted mono">111111111111</span>' in html


def test_recently_used_puts_the_latest_first_and_skips_roles_no_longer_usable(
    requester: User, org: Org
) -> None:
    issue(requester, org, "prod/web-frontend")
    issue(requester, org, "dev/payments-api")
    CredentialIssuance.objects.create(
        user=requester, role_arn=org.arn("prod/break-glass"), kind="cli", outcome="issued"
    )

    response = client_for(requester).get(reverse("my_roles"))

    recent = response.context["groups"][0]
    assert recent.title == "Recently used"
    assert [row.role.arn for row in recent.rows] == [
        org.arn("dev/payments-api"),
        org.arn("prod/web-frontend"),
    ]


def test_each_role_has_a_console_button_unless_it_is_cli_only(requester: User, org: Org) -> None:
    html = client_for(requester).get(reverse("my_roles")).content.decode()

    for key in ("prod/payments-api", "prod/web-frontend", "dev/payments-api"):
        assert f'action="{reverse("role_console", args=[org.roles[key].pk])}"' in html, key
    batch = org.roles["prod/payments-batch"].pk
    assert f'action="{reverse("role_console", args=[batch])}"' not in html
    assert html.count(">CLI only</span>") == 1
    assert html.count('<details class="cli"') == 4
    assert f'href="{reverse("my_role_cli", args=[batch])}"' in html
    assert f'hx-get="{reverse("my_role_cli", args=[batch])}"' in html


def test_the_search_filters_by_name_account_or_arn(requester: User, org: Org) -> None:
    client = client_for(requester)

    def found(query: str) -> set[str]:
        response = client.get(reverse("my_roles"), {"q": query})
        return {row.role.arn for g in response.context["groups"] for row in g.rows}

    assert found("FRONT") == {org.arn("prod/web-frontend")}
    assert found("acme-dev") == {org.arn("dev/payments-api")}
    assert found("222222222222") == {org.arn("dev/payments-api")}
    assert found("role/service/") == {
        org.arn("prod/payments-api"),
        org.arn("prod/payments-batch"),
        org.arn("dev/payments-api"),
    }
    assert found("break-glass") == set()
    assert (
        "No role of yours matches “break-glass”"
        in client.get(reverse("my_roles"), {"q": "break-glass"}).content.decode()
    )


def test_the_search_answers_htmx_with_the_list_only(requester: User, org: Org) -> None:
    client = client_for(requester)

    response = client.get(reverse("my_roles"), {"q": "web"}, headers=HTMX)

    html = response.content.decode()
    assert html.lstrip().startswith('<section id="my-roles"')
    assert "<html" not in html
    assert listed_arns(html) == {org.arn("prod/web-frontend")}
    assert "HX-Request" in response["Vary"]
    full = client.get(reverse("my_roles"), {"q": "web"}).content.decode()
    assert 'hx-get="/"' in full and 'method="get" action="/"' in full


def test_the_search_refuses_overlong_input(requester: User, org: Org) -> None:
    response = client_for(requester).get(reverse("my_roles"), {"q": "x" * 201})
    assert response.status_code == 200
    assert "at most 200 characters" in response.content.decode()
    assert shown_role_ids(response) == []


# --- CLI snippets and environment credentials -----------------------------------------


def test_the_cli_snippets_name_the_role_for_weep_and_the_aws_config(
    requester: User, org: Org
) -> None:
    arn = org.arn("prod/payments-api")
    client = client_for(requester)

    fragment = client.get(
        reverse("my_role_cli", args=[org.roles["prod/payments-api"].pk]), headers=HTMX
    )

    html = fragment.content.decode()
    assert "<html" not in html
    assert f"weep credential_process {arn}" in html
    assert f"weep export {arn}" in html
    assert f"weep console {arn}" in html
    assert (
        f"[profile acme-prod-payments-api]\ncredential_process = weep credential_process {arn}"
        in html
    )
    assert (
        f'hx-post="{reverse("my_role_credentials", args=[org.roles["prod/payments-api"].pk])}"'
        in html
    )

    page = client.get(reverse("my_role_cli", args=[org.roles["prod/payments-api"].pk]))
    assert "<html" in page.content.decode()
    assert f"weep export {arn}" in page.content.decode()
    assert not CredentialIssuance.objects.exists()


def test_the_cli_snippets_of_a_cli_only_role_leave_out_the_console(
    requester: User, org: Org
) -> None:
    role = org.roles["prod/payments-batch"]
    html = client_for(requester).get(reverse("my_role_cli", args=[role.pk])).content.decode()
    assert f"weep credential_process {role.arn}" in html
    assert "weep console" not in html
    assert reverse("role_console", args=[role.pk]) not in html


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_environment_credentials_are_shown_once_and_never_stored(
    requester: User, org: Org, htmx: bool
) -> None:
    role = org.roles["prod/payments-batch"]  # CLI-only roles get credentials too

    response = client_for(requester).post(
        reverse("my_role_credentials", args=[role.pk]), headers=HTMX if htmx else {}
    )

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert "private" in response["Cache-Control"]
    html = response.content.decode()
    assert ("<html" in html) is not htmx
    exports = dict(re.findall(r"export (AWS_[A-Z_]+)=([^\s<]+)", html))
    assert set(exports) == {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
    }
    assert exports["AWS_REGION"] == "us-east-1"
    assert "They expire at" in html

    issuance = CredentialIssuance.objects.get()
    assert (issuance.user, issuance.kind, issuance.outcome) == (requester, "web", "issued")
    assert issuance.role_arn == role.arn
    assert issuance.expiration is not None
    assert issuance.expiration.strftime("%Y-%m-%d %H:%M") in html
    stored = " ".join(
        str(getattr(issuance, f.attname)) for f in CredentialIssuance._meta.concrete_fields
    )
    assert exports["AWS_SECRET_ACCESS_KEY"] not in stored
    assert exports["AWS_SESSION_TOKEN"] not in stored


def test_environment_credentials_take_a_post_only(requester: User, org: Org) -> None:
    url = reverse("my_role_credentials", args=[org.roles["prod/payments-api"].pk])
    assert client_for(requester).get(url).status_code == 405
    assert not CredentialIssuance.objects.exists()


def test_environment_credentials_are_rate_limited(requester: User, org: Org, settings: Any) -> None:
    settings.IAMPORTAL_CREDENTIAL_RATE_LIMIT = 1
    client = client_for(requester)
    url = reverse("my_role_credentials", args=[org.roles["prod/payments-api"].pk])
    client.post(url)

    page = client.post(url)
    fragment = client.post(url, headers=HTMX)

    assert page.status_code == 429
    assert page["Retry-After"] == "60"
    # htmx swaps only successful responses, so the fragment carries the message.
    assert fragment.status_code == 200
    for response in (page, fragment):
        assert "Too many credential requests" in response.content.decode()
        assert "AWS_SECRET_ACCESS_KEY" not in response.content.decode()


# --- the role page --------------------------------------------------------------------


def role_page(user: User, org: Org, key: str) -> str:
    role = org.roles[key]
    url = reverse("role_detail", args=[role.account.account_id, role.name])
    response = client_for(user).get(url)
    assert response.status_code == 200
    return response.content.decode()


def test_the_role_page_shows_reviewers_who_may_use_and_who_used_the_role(
    requester: User, reviewer: User, admin_user: User, org: Org
) -> None:
    issue(requester, org, "prod/payments-api", kind="console")

    for user in (reviewer, admin_user):
        html = role_page(user, org, "prod/payments-api")
        assert "Who may use this role" in html
        assert "<li>team-payments</li>" in html
        assert "Recently used by" in html
        assert "alice@example.com" in html
        assert "10.1.2.3" in html
        assert ">Issued</span>" in html
        assert "<td>Console</td>" in html


def test_the_role_page_marks_cli_only_grants_for_reviewers(reviewer: User, org: Org) -> None:
    html = role_page(reviewer, org, "prod/payments-batch")
    assert '<li>team-payments <span class="badge warn">CLI only</span></li>' in html
    web = role_page(reviewer, org, "prod/web-frontend")
    assert "<li>alice@example.com</li>" in web


def test_the_role_page_shows_an_engineer_only_their_own_access(requester: User, org: Org) -> None:
    issue(requester, org, "prod/payments-api")

    usable = role_page(requester, org, "prod/payments-api")
    cli_only = role_page(requester, org, "prod/payments-batch")
    other = role_page(requester, org, "prod/break-glass")

    for html in (usable, cli_only, other):
        assert "Who may use this role" not in html
        assert "Recently used by" not in html
        assert "10.1.2.3" not in html
    assert "You may use this role, in the console" in usable
    assert f'action="{reverse("role_console", args=[org.roles["prod/payments-api"].pk])}"' in usable
    assert "from the command line only" in cli_only
    assert reverse("role_console", args=[org.roles["prod/payments-batch"].pk]) not in cli_only
    assert "You may not use this role" in other
    assert "iamportal-admins" not in other
    assert reverse("role_console", args=[org.roles["prod/break-glass"].pk]) not in other
