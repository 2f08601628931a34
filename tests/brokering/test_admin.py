"""Django admin for access rules, the issuance log and CLI challenges."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import TestCase
from django.urls import reverse
from django.utils import timezone

from brokering.models import AccessRule, CliChallenge, CredentialIssuance, SessionRevocation
from brokering.selectors import roles_for_user
from brokering.services import access_rule_save, credentials_issue
from tests.factories import Org, client_for

RULES = "admin:brokering_accessrule_changelist"
ADD_RULE = "admin:brokering_accessrule_add"
ISSUANCES = "admin:brokering_credentialissuance_changelist"
CHALLENGES = "admin:brokering_clichallenge_changelist"


def rule_form(**values: Any) -> dict[str, Any]:
    form = {
        "group": "",
        "user": "",
        "role_pattern": "",
        "description": "",
        "enabled": "on",
    }
    form.update(values)
    return {key: value for key, value in form.items() if value is not False}


def my_role_arns(user: User) -> set[str]:
    return {role.arn for role in roles_for_user(user)}


def change_url(obj: Any) -> str:
    meta = obj._meta
    return reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])


@pytest.fixture
def issuance(requester: User, org: Org) -> CredentialIssuance:
    credentials_issue(
        user=requester, role=org.roles["prod/payments-api"], kind="console", source_ip="10.0.0.7"
    )
    return CredentialIssuance.objects.get()


@pytest.fixture
def challenge(requester: User) -> CliChallenge:
    return CliChallenge.objects.create(
        requested_user="alice@example.com",
        requesting_ip="10.0.0.8",
        user=requester,
        expires_at=timezone.now() + timedelta(minutes=2),
    )


# --- access rules --------------------------------------------------------------------


def test_an_admin_adds_a_rule_and_the_user_sees_the_role_at_once(
    admin_user: User, outsider: User, org: Org
) -> None:
    assert my_role_arns(outsider) == set()  # the access index is built and cached here
    client = client_for(admin_user)

    response = client.post(
        reverse(ADD_RULE),
        rule_form(user=outsider.pk, role_pattern="arn:aws:iam::*:role/ReadOnly", cli_only="on"),
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    rule = AccessRule.objects.get(user=outsider)
    assert rule.cli_only
    assert my_role_arns(outsider) == {org.arn("prod/ReadOnly"), org.arn("dev/ReadOnly")}
    page = client_for(outsider).get(reverse("my_roles")).content.decode()
    assert org.arn("dev/ReadOnly") in page
    assert page.count(">CLI only</span>") == 2


def test_an_admin_edits_and_deletes_a_rule_and_access_follows(
    admin_user: User, outsider: User, org: Org
) -> None:
    contractors = Group.objects.get(name="contractors")
    rule = access_rule_save(
        rule=AccessRule(group=contractors, role_pattern="arn:aws:iam::111111111111:role/*")
    )
    assert len(my_role_arns(outsider)) == 5
    client = client_for(admin_user)

    edited = client.post(
        change_url(rule),
        rule_form(group=contractors.pk, role_pattern="arn:aws:iam::111111111111:role/ReadOnly"),
    )
    assert edited.status_code == 302
    assert my_role_arns(outsider) == {org.arn("prod/ReadOnly")}

    deleted = client.post(
        reverse("admin:brokering_accessrule_delete", args=[rule.pk]), {"post": "yes"}
    )
    assert deleted.status_code == 302
    assert not AccessRule.objects.filter(pk=rule.pk).exists()
    assert my_role_arns(outsider) == set()


def test_an_admin_deletes_rules_in_bulk_and_access_follows(
    admin_user: User, outsider: User, org: Org
) -> None:
    rules = [
        access_rule_save(rule=AccessRule(user=outsider, role_pattern=org.arn(key)))
        for key in ("prod/ReadOnly", "dev/ReadOnly")
    ]
    assert len(my_role_arns(outsider)) == 2

    response = client_for(admin_user).post(
        reverse(RULES),
        {"action": "delete_selected", "_selected_action": [r.pk for r in rules], "post": "yes"},
    )

    assert response.status_code == 302
    assert not AccessRule.objects.filter(user=outsider).exists()
    assert my_role_arns(outsider) == set()


def test_the_admin_refuses_a_rule_for_both_a_group_and_a_user(
    admin_user: User, outsider: User, org: Org
) -> None:
    contractors = Group.objects.get(name="contractors")
    response = client_for(admin_user).post(
        reverse(ADD_RULE),
        rule_form(group=contractors.pk, user=outsider.pk, role_pattern="arn:aws:iam::*:role/*"),
    )
    assert response.status_code == 200
    assert "Choose a group or a user, not both." in response.content.decode()
    assert not AccessRule.objects.filter(user=outsider).exists()
    assert my_role_arns(outsider) == set()


def test_the_rule_pages_explain_patterns_and_count_matching_roles(
    admin_user: User, org: Org
) -> None:
    rule = AccessRule.objects.get(role_pattern__endswith="break-*")
    client = client_for(admin_user)

    changelist = client.get(reverse(RULES)).content.decode()
    change = client.get(change_url(rule)).content.decode()
    add = client.get(reverse(ADD_RULE)).content.decode()

    assert "group iamportal-admins" in changelist
    assert "Roles matching now" in change
    assert "1 role<ul>" in change
    assert f'<li class="mono">{org.arn("prod/break-glass")}</li>' in change
    for html in (change, add):
        assert "* stands for any run of characters" in html
    assert 'id="lookup_id_user"' in add  # a raw id field, not a select of every user


def test_the_matching_count_follows_the_pattern(admin_user: User, outsider: User, org: Org) -> None:
    rule = access_rule_save(rule=AccessRule(user=outsider, role_pattern="ARN:AWS:IAM::*:ROLE/*"))
    other = access_rule_save(
        rule=AccessRule(user=outsider, role_pattern="arn:aws:iam::1:role/none")
    )
    client = client_for(admin_user)
    assert "7 roles<ul>" in client.get(change_url(rule)).content.decode()
    assert "0 roles: no synced role matches" in client.get(change_url(other)).content.decode()


@pytest.mark.parametrize("member", ["reviewer", "requester", "outsider"])
def test_only_admins_manage_rules(
    org: Org, member: str, request: pytest.FixtureRequest, outsider: User
) -> None:
    client = client_for(request.getfixturevalue(member))
    rule = AccessRule.objects.get()

    listing = client.get(reverse(RULES))
    added = client.post(
        reverse(ADD_RULE), rule_form(user=outsider.pk, role_pattern="arn:aws:iam::*:role/*")
    )
    changed = client.post(change_url(rule), rule_form(role_pattern="arn:aws:iam::*:role/*"))

    expected = 403 if member == "reviewer" else 302  # engineers are sent to the admin login
    assert listing.status_code == added.status_code == changed.status_code == expected
    assert AccessRule.objects.count() == 1
    assert AccessRule.objects.get().role_pattern.endswith("break-*")
    assert my_role_arns(outsider) == set()


# --- the issuance log --------------------------------------------------------------


@pytest.mark.parametrize("member", ["reviewer", "admin_user"])
def test_reviewers_and_admins_read_the_issuance_log(
    issuance: CredentialIssuance, member: str, request: pytest.FixtureRequest
) -> None:
    client = client_for(request.getfixturevalue(member))

    listing = client.get(reverse(ISSUANCES))
    detail = client.get(change_url(issuance))

    assert listing.status_code == 200
    assert issuance.role_arn in listing.content.decode()
    assert detail.status_code == 200
    html = detail.content.decode()
    assert "10.0.0.7" in html
    assert 'name="_save"' not in html
    assert reverse("role_detail", args=["111111111111", "payments-api"]) in html


@pytest.mark.parametrize(
    "query",
    [
        {"q": "alice@example"},
        {"q": "service/payments-api"},
        {"kind__exact": "console"},
        {"outcome__exact": "issued"},
        {"account_id": "111111111111"},
    ],
)
def test_the_issuance_log_is_searched_and_filtered(
    reviewer: User, issuance: CredentialIssuance, query: dict[str, str]
) -> None:
    response = client_for(reviewer).get(reverse(ISSUANCES), query)
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [issuance]


def test_the_issuance_log_filters_out_what_does_not_match(
    reviewer: User, issuance: CredentialIssuance
) -> None:
    for query in ({"q": "bob@example"}, {"kind__exact": "cli"}, {"outcome__exact": "denied"}):
        response = client_for(reviewer).get(reverse(ISSUANCES), query)
        assert list(response.context["cl"].result_list) == [], query
    today = timezone.now()
    dated = client_for(reviewer).get(
        reverse(ISSUANCES),
        {"requested_at__year": today.year, "requested_at__month": today.month},
    )
    assert list(dated.context["cl"].result_list) == [issuance]


def test_nobody_edits_or_deletes_the_issuance_log(
    admin_user: User, issuance: CredentialIssuance
) -> None:
    client = client_for(admin_user)
    assert client.get(reverse("admin:brokering_credentialissuance_add")).status_code == 403
    assert client.post(change_url(issuance), {"role_arn": "x"}).status_code == 403
    delete = reverse("admin:brokering_credentialissuance_delete", args=[issuance.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    issuance.refresh_from_db()
    assert issuance.role_arn.endswith("payments-api")


def test_an_engineer_cannot_reach_the_admin(
    requester: User, outsider: User, issuance: CredentialIssuance
) -> None:
    for user in (requester, outsider):
        client = client_for(user)
        for url in (reverse("admin:index"), reverse(ISSUANCES), change_url(issuance)):
            response = client.get(url)
            assert response.status_code == 302, url
            assert response["Location"].startswith(reverse("admin:login"))


# --- CLI challenges ------------------------------------------------------------------


def test_admins_read_cli_challenges_without_their_tokens(
    admin_user: User, challenge: CliChallenge
) -> None:
    client = client_for(admin_user)

    listing = client.get(reverse(CHALLENGES))
    detail = client.get(change_url(challenge))

    assert listing.status_code == detail.status_code == 200
    assert "10.0.0.8" in detail.content.decode()
    assert challenge.token not in listing.content.decode()
    assert challenge.token not in detail.content.decode()
    assert 'name="_save"' not in detail.content.decode()


def test_reviewers_do_not_see_cli_challenges(reviewer: User, challenge: CliChallenge) -> None:
    client = client_for(reviewer)
    assert client.get(reverse(CHALLENGES)).status_code == 403
    assert client.get(change_url(challenge)).status_code == 403
    assert reverse(CHALLENGES) not in client.get(reverse("admin:index")).content.decode()


# --- previewing a rule, and its expiry ----------------------------------------------------


def test_an_admin_previews_the_roles_a_new_rule_would_match_before_saving(
    admin_user: User, outsider: User, org: Org
) -> None:
    response = client_for(admin_user).post(
        reverse(ADD_RULE),
        rule_form(user=outsider.pk, role_pattern="arn:aws:iam::*:role/readonly", _preview="1"),
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "Preview: roles this rule would match (not saved)" in page
    assert "2 roles match “arn:aws:iam::*:role/readonly”" in page
    assert f'<li class="mono">{org.arn("dev/ReadOnly")}</li>' in page
    assert f'<li class="mono">{org.arn("prod/ReadOnly")}</li>' in page
    assert 'value="arn:aws:iam::*:role/readonly"' in page  # the form comes back as filled in
    assert not AccessRule.objects.filter(user=outsider).exists()
    assert my_role_arns(outsider) == set()


def test_the_preview_lists_at_most_its_cap_with_the_total(
    admin_user: User, org: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    from brokering import admin as brokering_admin

    monkeypatch.setattr(brokering_admin, "PREVIEW_SHOWN", 2)
    page = (
        client_for(admin_user)
        .post(reverse(ADD_RULE), rule_form(group="", role_pattern="arn:aws:iam::*", _preview="1"))
        .content.decode()
    )
    preview = page.split('id="rule-preview"', 1)[1].split("</fieldset>", 1)[0]
    assert "7 roles match “arn:aws:iam::*”; the first 2 are listed." in preview
    assert preview.count('<li class="mono">arn:aws:iam::') == 2
    assert "and 5 more." in preview


def test_previewing_a_change_saves_nothing(admin_user: User, org: Org) -> None:
    rule = AccessRule.objects.get()
    response = client_for(admin_user).post(
        change_url(rule),
        rule_form(group=rule.group_id, role_pattern="arn:aws:iam::*:role/nothing-*", _preview="1"),
    )
    assert response.status_code == 200
    assert "No synced role matches “arn:aws:iam::*:role/nothing-*”." in response.content.decode()
    rule.refresh_from_db()
    assert rule.role_pattern.endswith("role/break-*")


def test_the_preview_warns_of_an_expiry_already_passed(
    admin_user: User, outsider: User, org: Org
) -> None:
    page = (
        client_for(admin_user)
        .post(
            reverse(ADD_RULE),
            rule_form(
                user=outsider.pk,
                role_pattern=org.arn("prod/break-glass"),
                expires_at_0="2020-01-01",
                expires_at_1="00:00:00",
                _preview="1",
            ),
        )
        .content.decode()
    )
    assert "This rule's expiry has passed: saved like this, it grants nothing." in page


@pytest.mark.parametrize("who", ["requester", "reviewer", "outsider"])
def test_only_admins_preview_rules(who: str, request: pytest.FixtureRequest, org: Org) -> None:
    user = request.getfixturevalue(who)
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    response = client_for(user).post(
        reverse(ADD_RULE), rule_form(group="", role_pattern="arn:aws:iam::*", _preview="1")
    )
    assert response.status_code in (302, 403)
    assert "would match" not in response.content.decode()


def test_an_admin_sets_an_expiry_and_the_rule_stops_granting_at_it(
    admin_user: User, outsider: User, org: Org
) -> None:
    arn = org.arn("prod/break-glass")
    client = client_for(admin_user)
    later = timezone.now() + timedelta(days=1)
    response = client.post(
        reverse(ADD_RULE),
        rule_form(
            user=outsider.pk,
            role_pattern=arn,
            expires_at_0=later.strftime("%Y-%m-%d"),
            expires_at_1=later.strftime("%H:%M:%S"),
        ),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    rule = AccessRule.objects.get(user=outsider)
    assert rule.expires_at is not None
    assert arn in my_role_arns(outsider)
    listing = client.get(reverse(RULES)).content.decode()
    assert later.strftime("%Y") in listing

    rule.expires_at = timezone.now() - timedelta(seconds=1)
    access_rule_save(rule=rule)
    assert arn not in my_role_arns(User.objects.get(pk=outsider.pk))


# --- disabling a user ends their sessions --------------------------------------------------


def _issued(user: User, role: Any, *, kind: str) -> None:
    """The user got credentials (or a console session) for the role just now."""
    CredentialIssuance.objects.create(
        user=user,
        user_email=user.email,
        role_arn=role.arn,
        kind=kind,
        outcome=CredentialIssuance.Outcome.ISSUED,
    )


def test_disabling_a_user_in_the_admin_ends_their_sessions(
    superuser: User, requester: User, role: Any
) -> None:
    _issued(requester, role, kind="console")
    changelist = reverse("admin:auth_user_changelist")

    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client_for(superuser).post(
            changelist, {"action": "deactivate", "_selected_action": [requester.pk]}, follow=True
        )

    assert response.status_code == 200
    requester.refresh_from_db()
    assert not requester.is_active
    revocation = SessionRevocation.objects.get()
    assert (revocation.role_arn, revocation.actor) == (role.arn, superuser)
    assert revocation.status == SessionRevocation.Status.APPLIED


def test_clearing_active_on_the_user_form_ends_their_sessions(
    superuser: User, requester: User, role: Any
) -> None:
    _issued(requester, role, kind="cli")
    form = {
        "username": requester.username,
        "email": requester.email,
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
        "initial-date_joined_0": "2026-01-01",
        "initial-date_joined_1": "00:00:00",
        "groups": [g.pk for g in requester.groups.all()],
    }

    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client_for(superuser).post(change_url(requester), form)

    assert response.status_code == 302, response.content.decode()[:2000]
    requester.refresh_from_db()
    assert not requester.is_active
    assert SessionRevocation.objects.get().role_arn == role.arn


def test_only_admins_may_disable_users_with_the_action(reviewer: User, requester: User) -> None:
    changelist = reverse("admin:auth_user_changelist")

    response = client_for(reviewer).post(
        changelist, {"action": "deactivate", "_selected_action": [requester.pk]}
    )

    assert response.status_code in (302, 403)
    requester.refresh_from_db()
    assert requester.is_active


def test_a_user_holding_sessions_is_disabled_before_being_deleted(
    superuser: User, requester: User, outsider: User, role: Any
) -> None:
    _issued(requester, role, kind="cli")
    admin = client_for(superuser)
    delete = reverse("admin:auth_user_delete", args=[requester.pk])

    refused = admin.post(delete, {"post": "yes"})

    # Deleting would end none of their sessions; disabling does.
    assert refused.status_code == 200
    assert "disable them first" in refused.content.decode()
    assert User.objects.filter(pk=requester.pk).exists()
    with TestCase.captureOnCommitCallbacks(execute=True):
        admin.post(
            reverse("admin:auth_user_changelist"),
            {"action": "deactivate", "_selected_action": [requester.pk]},
        )
    assert admin.post(delete, {"post": "yes"}).status_code == 302
    assert not User.objects.filter(pk=requester.pk).exists()
    assert SessionRevocation.objects.get().session_name == "alice@example.com"
    # Someone who got no credentials lately is deleted at once.
    deleted = admin.post(reverse("admin:auth_user_delete", args=[outsider.pk]), {"post": "yes"})
    assert deleted.status_code == 302
    assert not User.objects.filter(pk=outsider.pk).exists()
