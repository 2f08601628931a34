"""What users copy: the role page's access section first, the CLI commands in a
tab per shell with the region, the Weep set-up page, and Copy buttons on every
ARN, command, one-time credential and new API token."""

from __future__ import annotations

import re
from html import unescape

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from iamportal.aws import default_region
from tests.factories import Org, client_for

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
COPY_BUTTON = re.compile(r'<button[^>]*class="[^"]*copy-button[^"]*"[^>]*>')


def copy_buttons(html: str) -> dict[str, str]:
    """aria-label -> the text of the element the button copies."""
    found = {}
    for tag in COPY_BUTTON.findall(html):
        assert " hidden" in tag, "a copy button is visible before the script shows it"
        target = re.search(r'data-copy="([^"]+)"', tag)
        label = re.search(r'aria-label="([^"]+)"', tag)
        assert target and label, tag
        element = re.search(rf'id="{re.escape(target[1])}">(.*?)</', html, re.S)
        assert element, f"nothing has the id {target[1]}"
        found[unescape(label[1])] = unescape(element[1])
    return found


def role_page(user: User, org: Org, key: str) -> str:
    role = org.roles[key]
    url = reverse("role_detail", args=[role.account.account_id, role.name])
    response = client_for(user).get(url)
    assert response.status_code == 200
    return response.content.decode()


def test_the_role_page_shows_your_access_before_the_policies(requester: User, org: Org) -> None:
    html = role_page(requester, org, "prod/payments-api")
    role = org.roles["prod/payments-api"]

    # Overview: your access comes before the role's facts.
    assert html.index("Your access") < html.index('id="role-detail"')
    access = html[html.index('id="role-access"') : html.index('id="role-detail"')]
    assert reverse("role_console", args=[role.pk]) in access
    assert reverse("my_role_cli", args=[role.pk]) in access
    assert reverse("my_role_credentials", args=[role.pk]) in access
    assert f'id="credentials-{role.pk}"' in access
    assert copy_buttons(html)["Copy ARN"] == role.arn


def test_the_role_page_offers_no_credentials_to_whoever_may_not_use_the_role(
    outsider: User, org: Org
) -> None:
    html = role_page(outsider, org, "prod/payments-api")
    role = org.roles["prod/payments-api"]

    assert html.index("Your access") < html.index('id="role-detail"')
    assert "You may not use this role" in html
    assert reverse("my_role_credentials", args=[role.pk]) not in html
    assert reverse("role_console", args=[role.pk]) not in html


def test_a_cli_only_role_page_offers_credentials_but_no_console(requester: User, org: Org) -> None:
    html = role_page(requester, org, "prod/payments-batch")
    role = org.roles["prod/payments-batch"]
    access = html[html.index('id="role-access"') : html.index('id="role-detail"')]

    assert reverse("my_role_credentials", args=[role.pk]) in access
    assert reverse("role_console", args=[role.pk]) not in access


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_the_cli_commands_come_in_a_tab_per_shell_with_the_region(
    requester: User, org: Org, htmx: bool
) -> None:
    role = org.roles["prod/payments-api"]
    response = client_for(requester).get(
        reverse("my_role_cli", args=[role.pk]), headers=HTMX if htmx else {}
    )
    html = response.content.decode()
    region = default_region()

    for shell in ("bash / zsh", "fish", "PowerShell"):
        assert f">{shell}</label>" in html, shell
    assert html.count('type="radio"') == 3
    assert re.search(r'type="radio"[^>]*checked><label[^>]*>bash / zsh<', html)
    copied = copy_buttons(html)
    assert copied["Copy bash and zsh commands"] == (
        f'eval "$(weep export {role.arn})"\nexport AWS_REGION={region}'
    )
    assert copied["Copy fish commands"] == (
        f"weep export {role.arn} | source\nset -gx AWS_REGION {region}"
    )
    assert f'$env:AWS_REGION = "{region}"' in copied["Copy PowerShell commands"]
    assert f"weep file {role.arn}" in copied["Copy PowerShell commands"]
    assert copied["Copy credential_process command"] == f"weep credential_process {role.arn}"
    assert f"region = {region}" in copied["Copy profile"]
    assert reverse("weep_setup") in html
    if not htmx:
        assert copied["Copy ARN"] == role.arn


def test_one_time_credentials_come_in_a_tab_per_shell_each_with_a_copy_button(
    requester: User, org: Org
) -> None:
    role = org.roles["prod/payments-api"]
    response = client_for(requester).post(
        reverse("my_role_credentials", args=[role.pk]), headers=HTMX
    )
    copied = copy_buttons(response.content.decode())
    region = default_region()

    bash = copied["Copy credentials for bash and zsh"]
    key_id = re.search(r"export AWS_ACCESS_KEY_ID=(\S+)", bash)
    assert key_id
    assert f"export AWS_REGION={region}" in bash
    fish = copied["Copy credentials for fish"]
    assert f"set -gx AWS_ACCESS_KEY_ID {key_id[1]}" in fish
    assert f"set -gx AWS_REGION {region}" in fish
    powershell = copied["Copy credentials for PowerShell"]
    assert f'$env:AWS_ACCESS_KEY_ID = "{key_id[1]}"' in powershell
    assert f'$env:AWS_REGION = "{region}"' in powershell
    for text in (bash, fish, powershell):
        assert "AWS_SECRET_ACCESS_KEY" in text
        assert "AWS_SESSION_TOKEN" in text


def test_my_roles_has_a_copy_button_for_each_arn(requester: User, org: Org) -> None:
    html = client_for(requester).get(reverse("my_roles")).content.decode()
    labels = re.findall(r'aria-label="Copy ARN"', html)  # one per role row
    ids = re.findall(r'data-copy="(row-arn-\d+)"', html)

    assert len(labels) == len(ids) == 4
    assert len(set(ids)) == len(ids)
    for role_key in ("prod/payments-api", "prod/payments-batch", "dev/payments-api"):
        role = org.roles[role_key]
        assert f'<span id="row-arn-{role.pk}">{role.arn}</span>' in html


def test_a_new_api_token_has_a_copy_button(requester: User) -> None:
    response = client_for(requester).post(
        reverse("api_token_create"), {"name": "laptop", "expires_in_days": "30"}
    )

    assert response.status_code == 200
    copied = copy_buttons(response.content.decode())
    token = copied["Copy token"]
    assert len(token) > 20
    assert token in response.content.decode()


def test_the_copy_script_is_a_static_file_and_no_page_has_inline_script(
    requester: User, org: Org
) -> None:
    client = client_for(requester)
    role = org.roles["prod/payments-api"]
    for url in (
        reverse("my_roles"),
        reverse("my_role_cli", args=[role.pk]),
        reverse("role_detail", args=[role.account.account_id, role.name]),
        reverse("profile"),
        reverse("weep_setup"),
        reverse("my_activity"),
    ):
        response = client.get(url)
        html = response.content.decode()
        scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
        assert all(body.strip() == "" and "src=" in attrs for attrs, body in scripts), url
        assert any("copy.js" in attrs for attrs, _ in scripts), url
        assert "onclick" not in html, url
        assert "script-src 'self'" in response["Content-Security-Policy"], url


def test_the_weep_set_up_page_fills_in_this_site_and_the_user(
    requester: User, anonymous: Client
) -> None:
    response = client_for(requester).get(reverse("weep_setup"))

    assert response.status_code == 200
    html = response.content.decode()
    copied = copy_buttons(html)
    assert copied["Copy Weep configuration"] == (
        "consoleme_url: http://testserver\n"
        "authentication_method: challenge\n"
        "challenge_settings:\n"
        "  user: alice@example.com"
    )
    assert "https://github.com/Netflix/weep/releases" in html
    assert "weep --log-level info" in html
    assert "without a browser" in html
    assert anonymous.get(reverse("weep_setup"))["Location"].startswith(reverse("login"))
