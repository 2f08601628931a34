"""The request page, the admin's approval confirmation and the wizard's review
step say which requested actions an SCP of the role's account or the role's
permissions boundary would deny, so nobody approves what cannot work."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import ManagedPolicy, OrgAccount, OrgNode, ServiceControlPolicy
from requests_app.changes import ChangeSpec
from requests_app.guardrails import changes_guardrails
from requests_app.models import PolicyRequest
from tests.factories import PROD, Inventory, admin_action, client_for, submitted

pytestmark = pytest.mark.django_db

BOUNDARY_ARN = f"arn:aws:iam::{PROD}:policy/boundaries/no-iam"
WANTED = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "Reports",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "organizations:LeaveOrganization", "iam:CreateUser"],
            "Resource": "*",
        }
    ],
}


def _doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


@pytest.fixture
def guardrails(inv: Inventory) -> Inventory:
    """The demo's organisation in the inventory: Root / Workloads / Prod holds
    acme-prod; FullAWSAccess everywhere, and on Workloads an SCP denying
    LeaveOrganization and anything the root user does. The role has a boundary
    allowing s3 and organizations only."""
    now = timezone.now()
    synced = {"content_hash": "x", "synced_at": now}
    root = "arn:aws:organizations::999999999999:root/o-abc/r-root"
    OrgNode.objects.create(
        node_id="r-root", kind="root", arn=root, name="Root", path="Root", **synced
    )
    for node_id, parent, path in (
        ("ou-work", "r-root", "Root / Workloads"),
        ("ou-prod", "ou-work", "Root / Workloads / Prod"),
    ):
        OrgNode.objects.create(
            node_id=node_id,
            kind="ou",
            arn=f"arn:aws:organizations::999999999999:ou/o-abc/{node_id}",
            name=path.rsplit(" / ", 1)[1],
            parent_id=parent,
            path=path,
            **synced,
        )
    OrgAccount.objects.create(account_id=PROD, name="acme-prod", parent_id="ou-prod", **synced)
    ServiceControlPolicy.objects.create(
        policy_id="p-FullAWSAccess",
        arn="arn:aws:organizations::aws:policy/service_control_policy/p-FullAWSAccess",
        name="FullAWSAccess",
        aws_managed=True,
        document=_doc({"Effect": "Allow", "Action": "*", "Resource": "*"}),
        targets=["r-root", "ou-work", "ou-prod", PROD],
        **synced,
    )
    ServiceControlPolicy.objects.create(
        policy_id="p-guard",
        arn="arn:aws:organizations::999999999999:policy/o-abc/service_control_policy/p-guard",
        name="deny-leaving-and-root",
        document=_doc(
            {"Effect": "Deny", "Action": "organizations:LeaveOrganization", "Resource": "*"},
            {
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {"StringLike": {"aws:PrincipalArn": "arn:aws:iam::*:root"}},
            },
        ),
        targets=["ou-work"],
        **synced,
    )
    ManagedPolicy.objects.create(
        account=inv.account,
        arn=BOUNDARY_ARN,
        name="no-iam",
        document=_doc({"Effect": "Allow", "Action": ["s3:*", "organizations:*"], "Resource": "*"}),
        **synced,
    )
    inv.api.permissions_boundary_arn = BOUNDARY_ARN
    inv.api.save(update_fields=["permissions_boundary_arn"])
    return inv


@pytest.fixture
def pending(requester: User, guardrails: Inventory) -> PolicyRequest:
    return submitted(requester, guardrails.api, policy_name="reports", document=WANTED)


def test_each_denied_action_gets_a_note_naming_the_scp_or_the_boundary(
    pending: PolicyRequest,
) -> None:
    [found] = changes_guardrails(role=pending.role, changes=list(pending.changes.all()))
    assert [(n.action, n.source, n.certain) for n in found.notes] == [
        ("organizations:LeaveOrganization", "scp", True),
        ("iam:CreateUser", "boundary", True),
    ]
    assert "denied by the SCP deny-leaving-and-root (on Root / Workloads)" in found.notes[0].message
    assert f"not allowed by the permissions boundary {BOUNDARY_ARN}" in found.notes[1].message


@pytest.mark.parametrize("who", ["requester", "reviewer"])
def test_the_request_page_shows_the_notes(
    who: str, request: pytest.FixtureRequest, pending: PolicyRequest
) -> None:
    user = request.getfixturevalue(who)
    page = client_for(user).get(reverse("request_detail", args=[pending.pk]))
    text = page.content.decode()
    assert "Guardrails" in text
    assert "organizations:LeaveOrganization on *: denied by the SCP deny-leaving-and-root" in text
    assert "iam:CreateUser on *: not allowed by the permissions boundary" in text
    assert "s3:GetObject on *:" not in text


def test_outsiders_and_anonymous_do_not_see_the_page(
    outsider: User, anonymous: Client, pending: PolicyRequest
) -> None:
    url = reverse("request_detail", args=[pending.pk])
    assert client_for(outsider).get(url).status_code == 404
    assert anonymous.get(url).status_code == 302


def test_the_admin_confirmation_shows_the_notes(admin_user: User, pending: PolicyRequest) -> None:
    confirmation = admin_action(admin_user, "approve", pending)
    assert confirmation.status_code == 200
    text = confirmation.content.decode()
    assert "Would not work:</strong> organizations:LeaveOrganization on *" in text
    assert "iam:CreateUser on *: not allowed by the permissions boundary" in text


def test_the_wizard_review_step_shows_the_notes_before_submitting(
    requester: User, guardrails: Inventory
) -> None:
    client = client_for(requester)
    role = guardrails.api
    editor = reverse("request_editor", args=[role.pk])
    saved = client.post(editor, {"document": json.dumps(WANTED)})
    assert saved.status_code in (200, 302), saved.content[:500]
    page = client.get(reverse("request_review", args=[role.pk]))
    text = page.content.decode()
    assert "denied by the SCP deny-leaving-and-root" in text
    assert "iam:CreateUser on *: not allowed by the permissions boundary" in text


def test_a_request_that_sets_a_new_boundary_is_judged_against_it(
    requester: User, guardrails: Inventory
) -> None:
    role = guardrails.api
    changes = [
        ChangeSpec(
            type="permissions_boundary_delete", target_arn=role.arn, account_id=PROD, payload={}
        ),
        ChangeSpec(
            type="inline_policy_put",
            target_arn=role.arn,
            account_id=PROD,
            payload={"policy_name": "reports", "document": WANTED},
        ),
    ]
    found = changes_guardrails(role=role, changes=changes)
    assert found[0].notes == []
    assert [n.source for n in found[1].notes] == ["scp"]


def test_nothing_is_noted_without_an_organisation_or_a_boundary(
    requester: User, inv: Inventory
) -> None:
    request = submitted(requester, inv.api, policy_name="reports", document=WANTED)
    [found] = changes_guardrails(role=request.role, changes=list(request.changes.all()))
    assert found.notes == [] and found.boundary_unknown == ""


def test_a_boundary_the_inventory_lacks_is_said_to_be_unchecked(
    requester: User, inv: Inventory
) -> None:
    inv.api.permissions_boundary_arn = "arn:aws:iam::aws:policy/PowerUserAccess"
    inv.api.save(update_fields=["permissions_boundary_arn"])
    request = submitted(requester, inv.api, policy_name="reports", document=WANTED)
    page = client_for(requester).get(reverse("request_detail", args=[request.pk]))
    assert "arn:aws:iam::aws:policy/PowerUserAccess</span> is not in the inventory" in (
        page.content.decode()
    )


def test_a_page_lists_at_most_fifty_notes_per_change_and_counts_the_rest(
    requester: User, guardrails: Inventory
) -> None:
    many = _doc(
        {"Effect": "Allow", "Action": [f"ec2:Action{n}" for n in range(60)], "Resource": "*"}
    )
    spec = ChangeSpec(
        type="inline_policy_put",
        target_arn=guardrails.api.arn,
        account_id=PROD,
        payload={"policy_name": "many", "document": many},
    )
    [found] = changes_guardrails(role=guardrails.api, changes=[spec])
    assert (len(found.notes), found.more) == (50, 10)
