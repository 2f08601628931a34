"""Who may use which role: role tags and access rules, for every member of the
cast, and role resolution the way Weep does it."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser, Group, User
from django.core.exceptions import ValidationError
from django.http import Http404
from django.test import TestCase
from django.utils import timezone

from accounts.models import AwsAccount, IamRole
from accounts.services import account_sync_request
from brokering.models import AccessRule
from brokering.selectors import (
    RoleAmbiguous,
    RoleNotFound,
    eligible_role_ids,
    role_resolve,
    roles_for_user,
    usable_role_for_user,
    users_for_role,
)
from brokering.services import access_rule_delete, access_rule_save
from iamportal import aws, demo
from iamportal.auth import user_groups_sync
from tests.factories import Org


def role_keys(org: Org, user: User | AnonymousUser, **options: Any) -> dict[str, bool]:
    """The fixture keys of the roles `user` may use -> CLI only."""
    keys = {role.pk: key for key, role in org.roles.items()}
    return {keys[role.id]: role.cli_only for role in roles_for_user(user, **options)}


def make_role(account: AwsAccount, name: str, tags: dict[str, str], path: str = "/") -> IamRole:
    return IamRole.objects.create(
        account=account,
        arn=f"arn:aws:iam::{account.account_id}:role{path}{name}",
        name=name,
        path=path,
        tags=tags,
        content_hash="test",
        synced_at=timezone.now(),
    )


# --- the cast ----------------------------------------------------------------------


EXPECTED = {
    "requester": {
        "prod/payments-api": False,
        "prod/payments-batch": True,
        "prod/web-frontend": False,
        "dev/payments-api": False,
    },
    "reviewer": {},
    "admin_user": {"prod/break-glass": False},
    "outsider": {},
}


@pytest.mark.parametrize("member", list(EXPECTED))
def test_each_member_of_the_cast_may_use_exactly_their_roles(
    org: Org, member: str, request: pytest.FixtureRequest
) -> None:
    user = request.getfixturevalue(member)
    assert role_keys(org, user) == EXPECTED[member]


def test_an_anonymous_visitor_may_use_no_role(org: Org) -> None:
    assert roles_for_user(AnonymousUser()) == []
    assert eligible_role_ids(AnonymousUser()) == {}
    with pytest.raises(Http404):
        usable_role_for_user(user=AnonymousUser(), role_id=org.roles["prod/ReadOnly"].pk)


def test_an_inactive_user_may_use_no_role(requester: User, org: Org) -> None:
    requester.is_active = False
    requester.save(update_fields=["is_active"])
    assert roles_for_user(requester) == []


def test_it_lists_roles_sorted_by_arn_with_their_account(requester: User, org: Org) -> None:
    roles = roles_for_user(requester)
    assert [role.arn for role in roles] == sorted(role.arn for role in roles)
    web = next(role for role in roles if role.name == "web-frontend")
    assert (web.account_id, web.account_name) == ("111111111111", "acme-prod")


def test_it_leaves_out_cli_only_roles_when_asked(requester: User, org: Org) -> None:
    keys = role_keys(org, requester, include_cli_only=False)
    assert "prod/payments-batch" not in keys
    assert set(keys) == set(EXPECTED["requester"]) - {"prod/payments-batch"}


def test_it_leaves_out_roles_of_a_disabled_account(requester: User, org: Org) -> None:
    org.dev.enabled = False
    org.dev.save(update_fields=["enabled"])
    assert "dev/payments-api" not in role_keys(org, requester)


def test_the_access_gate_answers_only_for_usable_roles(
    requester: User, outsider: User, org: Org
) -> None:
    mine = org.roles["prod/payments-api"]
    found = usable_role_for_user(user=requester, role_id=mine.pk)
    assert found == mine
    assert found.account == org.prod
    for user, role_id in (
        (requester, org.roles["prod/break-glass"].pk),
        (outsider, mine.pk),
        (requester, 999_999),
    ):
        with pytest.raises(Http404):
            usable_role_for_user(user=user, role_id=role_id)


# --- tags ----------------------------------------------------------------------------


def test_a_console_grant_wins_over_a_cli_only_grant(
    requester: User, outsider: User, org: Org
) -> None:
    role = make_role(
        org.prod,
        "shared",
        {
            "iamportal-authorized": "contractors",
            "iamportal-authorized-cli-only": "contractors:team-payments",
        },
    )
    cli = {r.id: r.cli_only for r in roles_for_user(requester)}
    console = {r.id: r.cli_only for r in roles_for_user(outsider)}
    assert cli[role.pk] is True
    assert console[role.pk] is False


def test_tag_values_ignore_case_blanks_and_empty_entries(outsider: User, org: Org) -> None:
    role = make_role(org.dev, "spaced", {"iamportal-authorized": " : Contractors :: "})
    assert [r.id for r in roles_for_user(outsider)] == [role.pk]


def test_it_honours_configured_tag_names(requester: User, org: Org, settings: Any) -> None:
    settings.IAMPORTAL_AUTH_TAG = "access"
    settings.IAMPORTAL_AUTH_CLI_TAG = "access-cli"
    role = make_role(org.dev, "custom", {"access": "team-payments"})
    assert [r.id for r in roles_for_user(requester)] == [role.pk]


# --- access rules ----------------------------------------------------------------


def test_a_group_rule_with_a_pattern_grants_every_matching_role(outsider: User, org: Org) -> None:
    contractors = Group.objects.get(name="contractors")
    access_rule_save(
        rule=AccessRule(group=contractors, role_pattern="ARN:AWS:IAM::*:ROLE/readonly")
    )
    assert role_keys(org, outsider) == {"prod/ReadOnly": False, "dev/ReadOnly": False}


def test_a_user_rule_grants_that_user_only(outsider: User, reviewer: User, org: Org) -> None:
    access_rule_save(
        rule=AccessRule(
            user=outsider, role_pattern="arn:aws:iam::222222222222:role/*", cli_only=True
        )
    )
    assert role_keys(org, outsider) == {"dev/payments-api": True, "dev/ReadOnly": True}
    assert role_keys(org, reviewer) == {}


def test_a_question_mark_matches_one_character(outsider: User, org: Org) -> None:
    access_rule_save(
        rule=AccessRule(user=outsider, role_pattern="arn:aws:iam::11111111111?:role/ReadOnl?")
    )
    assert role_keys(org, outsider) == {"prod/ReadOnly": False}


def test_a_pattern_without_wildcards_must_match_the_whole_arn(outsider: User, org: Org) -> None:
    access_rule_save(
        rule=AccessRule(user=outsider, role_pattern="arn:aws:iam::111111111111:role/Read")
    )
    assert role_keys(org, outsider) == {}


def test_a_disabled_rule_grants_nothing(outsider: User, org: Org) -> None:
    access_rule_save(
        rule=AccessRule(user=outsider, role_pattern="arn:aws:iam::*:role/*", enabled=False)
    )
    assert role_keys(org, outsider) == {}


def test_a_rule_change_is_seen_at_once(outsider: User, org: Org) -> None:
    assert role_keys(org, outsider) == {}  # the index is built and cached here

    rule = access_rule_save(
        rule=AccessRule(user=outsider, role_pattern="arn:aws:iam::*:role/ReadOnly")
    )
    assert set(role_keys(org, outsider)) == {"prod/ReadOnly", "dev/ReadOnly"}

    rule.role_pattern = "arn:aws:iam::222222222222:role/ReadOnly"
    rule.cli_only = True
    access_rule_save(rule=rule)
    assert role_keys(org, outsider) == {"dev/ReadOnly": True}

    rule.enabled = False
    access_rule_save(rule=rule)
    assert role_keys(org, outsider) == {}

    rule.enabled = True
    access_rule_save(rule=rule)
    access_rule_delete(rule=rule)
    assert role_keys(org, outsider) == {}


def test_a_group_membership_change_is_seen_at_once(outsider: User, org: Org) -> None:
    assert role_keys(org, outsider) == {}
    user_groups_sync(user=outsider, group_names=["team-payments"])
    assert "prod/payments-api" in role_keys(org, outsider)


def test_a_rule_needs_a_group_or_a_user_but_not_both(outsider: User, org: Org) -> None:
    group = Group.objects.get(name="contractors")
    with pytest.raises(ValidationError):
        access_rule_save(rule=AccessRule(role_pattern="arn:aws:iam::*:role/*"))
    with pytest.raises(ValidationError):
        access_rule_save(
            rule=AccessRule(group=group, user=outsider, role_pattern="arn:aws:iam::*:role/*")
        )
    assert not AccessRule.objects.filter(role_pattern="arn:aws:iam::*:role/*").exists()


# --- a sync that changes a role's tags ---------------------------------------------


def _sync(account: AwsAccount) -> None:
    with TestCase.captureOnCommitCallbacks(execute=True):
        run = account_sync_request(account=account)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error


@pytest.mark.django_db
def test_a_role_tag_change_found_by_a_sync_is_seen_at_once(outsider: User) -> None:
    seeded = demo.organisation_seed()
    accounts = demo.accounts_onboard(seeded)
    prod = accounts[0]
    _sync(prod)
    before = {role.name for role in roles_for_user(outsider)}  # the index is cached here
    assert "ReadOnly" not in before

    iam = aws.client("iam", session=demo.account_session(prod.account_id))
    iam.tag_role(
        RoleName="ReadOnly", Tags=[{"Key": "iamportal-authorized", "Value": "contractors"}]
    )
    _sync(prod)

    after = roles_for_user(outsider)
    assert [(role.name, role.account_id) for role in after if role.name == "ReadOnly"] == [
        ("ReadOnly", prod.account_id)
    ]

    iam.untag_role(RoleName="ReadOnly", TagKeys=["iamportal-authorized"])
    _sync(prod)
    assert "ReadOnly" not in {role.name for role in roles_for_user(outsider)}


# --- who may use a role ---------------------------------------------------------------


def test_it_lists_the_groups_and_users_who_may_use_a_role(outsider: User, org: Org) -> None:
    access_rule_save(
        rule=AccessRule(user=outsider, role_pattern=org.arn("prod/web-frontend"), cli_only=True)
    )

    web = users_for_role(org.roles["prod/web-frontend"])
    batch = users_for_role(org.roles["prod/payments-batch"])
    glass = users_for_role(org.roles["prod/break-glass"])

    assert web.groups == [("team-web", False)]
    assert web.users == [("alice@example.com", False), ("oscar@example.com", True)]
    assert batch.groups == [("team-payments", True)]
    assert batch.users == []
    assert glass.groups == [("iamportal-admins", False)]
    assert users_for_role(org.roles["dev/ReadOnly"]).groups == [("engineering", False)]


def test_nobody_may_use_an_untagged_role_without_a_rule(org: Org) -> None:
    role = make_role(org.dev, "lonely", {"owner": "nobody"})
    audience = users_for_role(role)
    assert (audience.groups, audience.users) == ([], [])


# --- resolving what the user typed ---------------------------------------------------


def test_an_exact_arn_wins_over_a_longer_arn_containing_it(requester: User, org: Org) -> None:
    make_role(org.prod, "payments-api-v2", {"iamportal-authorized": "team-payments"}, "/service/")
    exact = org.arn("prod/payments-api")

    assert role_resolve(requester, exact).id == org.roles["prod/payments-api"].pk
    assert role_resolve(requester, f"  {exact.upper()} ").id == org.roles["prod/payments-api"].pk


def test_a_unique_part_of_an_arn_resolves(requester: User, org: Org) -> None:
    assert role_resolve(requester, "WEB-front").id == org.roles["prod/web-frontend"].pk
    assert (
        role_resolve(requester, "222222222222:role/service/").id == org.roles["dev/payments-api"].pk
    )


def test_several_matches_are_ambiguous(requester: User, org: Org) -> None:
    with pytest.raises(RoleAmbiguous) as exc:
        role_resolve(requester, "payments-api")
    assert sorted(role.arn for role in exc.value.matches) == sorted(
        [org.arn("prod/payments-api"), org.arn("dev/payments-api")]
    )


@pytest.mark.parametrize("requested", ["break-glass", "ReadOnly", "nothing", "", "   "])
def test_a_role_the_user_may_not_use_is_not_found(
    requester: User, org: Org, requested: str
) -> None:
    with pytest.raises(RoleNotFound):
        role_resolve(requester, requested)


def test_cli_only_roles_are_left_out_for_the_console(requester: User, org: Org) -> None:
    batch = org.arn("prod/payments-batch")
    assert role_resolve(requester, batch).cli_only is True
    with pytest.raises(RoleNotFound):
        role_resolve(requester, batch, include_cli_only=False)
    # "payments" matches three roles, two of them for the console.
    with pytest.raises(RoleAmbiguous) as exc:
        role_resolve(requester, "payments", include_cli_only=False)
    assert batch not in {role.arn for role in exc.value.matches}


def test_resolution_never_considers_other_users_roles(
    admin_user: User, requester: User, org: Org
) -> None:
    # "glass" is unique among the admin's roles and unknown among alice's.
    assert role_resolve(admin_user, "glass").arn == org.arn("prod/break-glass")
    with pytest.raises(RoleNotFound):
        role_resolve(requester, "glass")
