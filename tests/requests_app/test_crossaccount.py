"""The other half of a cross-account grant: resource and trust policy changes
added to a request when its policy reaches into another managed account."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.utils import timezone

from accounts.models import AwsAccount, CloudResource, IamRole
from requests_app.changes import cross_account_changes, statement_sid
from requests_app.policy.generate import Intent, policy_generate

pytestmark = pytest.mark.django_db

ROLE_ARN = "arn:aws:iam::111111111111:role/payments-api"
BUCKET_ARN = "arn:aws:s3:::acme-invoices"
QUEUE_ARN = "arn:aws:sqs:us-east-1:222222222222:orders"
TOPIC_ARN = "arn:aws:sns:eu-west-1:222222222222:alerts"
TARGET_ROLE_ARN = "arn:aws:iam::222222222222:role/deployer"
BUCKET_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Sid": "Existing", "Effect": "Deny", "Principal": "*", "Action": "s3:*"}],
}


def policy(*statements: Any) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(actions: Any, resources: Any, **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": actions, "Resource": resources, **extra}


def inventory_row(model: Any, account: AwsAccount, arn: str, name: str, **fields: Any) -> Any:
    return model.objects.create(
        account=account, arn=arn, name=name, content_hash="x", synced_at=timezone.now(), **fields
    )


@pytest.fixture
def role(db: None) -> IamRole:
    account = AwsAccount.objects.create(account_id="111111111111", name="acme-prod")
    return inventory_row(IamRole, account, ROLE_ARN, "payments-api")


@pytest.fixture
def data_account(db: None) -> AwsAccount:
    return AwsAccount.objects.create(account_id="222222222222", name="acme-data")


@pytest.fixture
def bucket(data_account: AwsAccount) -> CloudResource:
    return inventory_row(
        CloudResource, data_account, BUCKET_ARN, "acme-invoices", type="s3", policy=BUCKET_POLICY
    )


def changes(role: IamRole, *statements: Any) -> list[Any]:
    return cross_account_changes(role=role, document=policy(*statements))


def test_a_bucket_in_another_account_gets_a_bucket_policy_change(
    role: IamRole, bucket: CloudResource
) -> None:
    [change] = changes(role, allow(["s3:ListBucket"], BUCKET_ARN))
    assert change.type == "resource_policy_put"
    assert change.target_arn == BUCKET_ARN
    assert change.account_id == "222222222222"
    assert change.automatic is True
    assert change.previous == BUCKET_POLICY
    assert change.note == (
        "acme-invoices is in acme-data (222222222222): its bucket policy must also allow this role."
    )
    assert change.payload == {
        "statements": [
            {
                "Sid": statement_sid(ROLE_ARN),
                "Effect": "Allow",
                "Principal": {"AWS": ROLE_ARN},
                "Action": ["s3:ListBucket"],
                "Resource": [BUCKET_ARN],
            }
        ]
    }


def test_object_arns_target_their_bucket_and_keep_the_resources_as_written(
    role: IamRole, bucket: CloudResource
) -> None:
    [change] = changes(
        role,
        allow("s3:GetObject", f"{BUCKET_ARN}/exports/2026-*"),
        allow(["s3:ListBucket"], BUCKET_ARN),
    )
    assert change.target_arn == BUCKET_ARN
    # One statement per shape: ListBucket never reaches objects, GetObject never the bucket.
    listing, reading = change.payload["statements"]
    assert (listing["Action"], listing["Resource"]) == (["s3:ListBucket"], [BUCKET_ARN])
    assert (reading["Action"], reading["Resource"]) == (
        ["s3:GetObject"],
        [f"{BUCKET_ARN}/exports/2026-*"],
    )
    assert listing["Sid"] == statement_sid(ROLE_ARN)
    assert reading["Sid"] == statement_sid(ROLE_ARN) + "S2"


def _pairs(statements: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """Every (action, resource, condition) a list of statements allows."""
    return {
        (action, resource, json.dumps(statement.get("Condition"), sort_keys=True))
        for statement in statements
        for action in (
            [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        )
        for resource in (
            [statement["Resource"]]
            if isinstance(statement["Resource"], str)
            else statement["Resource"]
        )
    }


def test_the_bucket_side_of_a_prefix_grant_is_exactly_as_narrow_as_the_roles_side(
    role: IamRole, bucket: CloudResource
) -> None:
    intent = Intent(
        service="s3",
        resource=BUCKET_ARN,
        access=("list", "read", "write"),
        options={"prefix": "reports/2026/"},
    )
    document = policy_generate([intent])
    [change] = cross_account_changes(role=role, document=document)
    role_side = _pairs(document["Statement"])
    bucket_side = _pairs(change.payload["statements"])
    assert bucket_side == role_side
    by_action = {action: (resource, condition) for action, resource, condition in bucket_side}
    prefix = json.dumps({"StringLike": {"s3:prefix": ["reports/2026/*"]}}, sort_keys=True)
    assert by_action["s3:ListBucket"] == (BUCKET_ARN, prefix)
    for action in ("s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"):
        assert by_action[action] == (f"{BUCKET_ARN}/reports/2026/*", "null")
    for statement in change.payload["statements"]:
        assert statement["Principal"] == {"AWS": ROLE_ARN}


def test_actions_named_on_both_arns_reach_only_the_arn_they_act_on(
    role: IamRole, bucket: CloudResource
) -> None:
    [change] = changes(
        role,
        allow(["s3:GetObject", "s3:ListBucket"], [BUCKET_ARN, f"{BUCKET_ARN}/in/*"]),
    )
    assert _pairs(change.payload["statements"]) == {
        ("s3:ListBucket", BUCKET_ARN, "null"),
        ("s3:GetObject", f"{BUCKET_ARN}/in/*", "null"),
    }


def test_a_statement_with_a_condition_that_is_not_an_object_adds_nothing(
    role: IamRole, bucket: CloudResource
) -> None:
    assert changes(role, allow("s3:ListBucket", BUCKET_ARN, Condition="yes")) == []


def test_a_queue_and_a_topic_get_their_own_policy_changes_in_arn_order(
    role: IamRole, data_account: AwsAccount
) -> None:
    queue_policy = {"Version": "2012-10-17", "Statement": []}
    inventory_row(CloudResource, data_account, QUEUE_ARN, "orders", type="sqs", policy=queue_policy)
    result = changes(
        role,
        allow(["sqs:SendMessage", "sns:Publish"], [QUEUE_ARN, TOPIC_ARN]),
    )
    assert [c.target_arn for c in result] == [TOPIC_ARN, QUEUE_ARN]
    topic, queue = result
    assert (topic.type, queue.type) == ("resource_policy_put", "resource_policy_put")
    assert topic.payload["statements"][0]["Action"] == ["sns:Publish"]
    assert topic.payload["statements"][0]["Resource"] == [TOPIC_ARN]
    assert topic.previous is None
    assert "its topic policy must also allow" in topic.note
    assert queue.payload["statements"][0]["Action"] == ["sqs:SendMessage"]
    assert queue.payload["statements"][0]["Resource"] == [QUEUE_ARN]
    assert queue.previous == queue_policy
    assert queue.note.startswith("orders is in acme-data (222222222222): its queue policy")


def test_a_role_to_assume_in_another_account_gets_a_trust_policy_change(
    role: IamRole, data_account: AwsAccount
) -> None:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "x"}
        ],
    }
    inventory_row(IamRole, data_account, TARGET_ROLE_ARN, "deployer", trust_policy=trust)
    [change] = changes(
        role,
        allow(["sts:AssumeRole", "sts:TagSession", "sts:GetCallerIdentity"], TARGET_ROLE_ARN),
    )
    assert change.type == "trust_policy_update"
    assert change.target_arn == TARGET_ROLE_ARN
    assert change.account_id == "222222222222"
    assert change.previous == trust
    assert change.note == (
        "deployer is in acme-data (222222222222): its trust policy must also allow this role."
    )
    assert change.payload == {
        "statements": [
            {
                "Sid": statement_sid(ROLE_ARN),
                "Effect": "Allow",
                "Principal": {"AWS": ROLE_ARN},
                "Action": ["sts:AssumeRole", "sts:TagSession"],
            }
        ]
    }


def test_a_role_the_inventory_does_not_know_by_that_exact_arn_gets_nothing(
    role: IamRole, data_account: AwsAccount
) -> None:
    # IAM finds roles by name: a made-up path must not reach the real role.
    inventory_row(IamRole, data_account, TARGET_ROLE_ARN, "deployer")
    decoy = TARGET_ROLE_ARN.replace(":role/", ":role/decoy/")
    assert changes(role, allow("sts:AssumeRole", decoy)) == []
    assert len(changes(role, allow("sts:AssumeRole", TARGET_ROLE_ARN))) == 1


def test_iamportal_s_own_roles_never_get_a_trust_change(
    role: IamRole, data_account: AwsAccount
) -> None:
    spoke = data_account.spoke_role_arn
    inventory_row(IamRole, data_account, spoke, spoke.rsplit("/", 1)[-1])
    assert changes(role, allow("sts:AssumeRole", spoke)) == []


def test_other_actions_on_a_role_ask_for_no_trust_change(
    role: IamRole, data_account: AwsAccount
) -> None:
    assert changes(role, allow(["iam:GetRole", "sts:GetCallerIdentity"], TARGET_ROLE_ARN)) == []


def test_actions_of_other_services_do_not_reach_a_resource(
    role: IamRole, bucket: CloudResource
) -> None:
    assert changes(role, allow(["sqs:SendMessage", "*"], BUCKET_ARN)) == []


def test_resources_in_the_roles_own_account_need_nothing(role: IamRole) -> None:
    inventory_row(
        CloudResource, role.account, "arn:aws:s3:::acme-payments", "acme-payments", type="s3"
    )
    assert (
        changes(
            role,
            allow("s3:GetObject", "arn:aws:s3:::acme-payments/*"),
            allow("sqs:SendMessage", "arn:aws:sqs:us-east-1:111111111111:payments"),
            allow("sts:AssumeRole", "arn:aws:iam::111111111111:role/other"),
        )
        == []
    )


def test_accounts_iamportal_does_not_manage_need_nothing(role: IamRole) -> None:
    assert (
        changes(
            role,
            allow("sqs:SendMessage", "arn:aws:sqs:us-east-1:333333333333:partner-queue"),
            allow("sts:AssumeRole", "arn:aws:iam::333333333333:role/partner"),
        )
        == []
    )


def test_disabled_accounts_need_nothing(role: IamRole, bucket: CloudResource) -> None:
    AwsAccount.objects.filter(account_id="222222222222").update(enabled=False)
    assert (
        changes(
            role,
            allow("s3:GetObject", f"{BUCKET_ARN}/*"),
            allow("sqs:SendMessage", QUEUE_ARN),
        )
        == []
    )


def test_a_bucket_missing_from_the_inventory_needs_nothing(
    role: IamRole, data_account: AwsAccount
) -> None:
    assert changes(role, allow("s3:GetObject", "arn:aws:s3:::someone-elses-bucket/*")) == []


@pytest.mark.parametrize(
    "resource",
    [
        "*",
        "arn:aws:s3:::*",
        "arn:aws:s3:::acme-*/*",
        "arn:aws:s3:::acme-invoice?",
        "arn:aws:s3:::${aws:username}",
        "arn:aws:sqs:us-east-1:*:orders",
        "arn:aws:sqs:us-east-1:222222222222:*",
        "arn:aws:sqs:*:222222222222:orders",
        "arn:aws:sns:us-east-1:22222222222?:alerts",
        "arn:aws:iam::222222222222:role/*",
        "arn:aws:iam::*:role/deployer",
        "arn:aws:iam::222222222222:role/team/${aws:PrincipalTag/team}",
    ],
)
def test_wildcard_resources_need_nothing(
    role: IamRole, bucket: CloudResource, resource: str
) -> None:
    actions = ["s3:GetObject", "sqs:SendMessage", "sns:Publish", "sts:AssumeRole"]
    assert changes(role, allow(actions, resource)) == []


def test_deny_and_not_action_or_not_resource_statements_are_ignored(
    role: IamRole, bucket: CloudResource
) -> None:
    assert (
        changes(
            role,
            {"Effect": "Deny", "Action": "s3:GetObject", "Resource": f"{BUCKET_ARN}/*"},
            {"Effect": "Allow", "NotAction": "s3:DeleteObject", "Resource": f"{BUCKET_ARN}/*"},
            {"Effect": "Allow", "Action": "s3:GetObject", "NotResource": f"{BUCKET_ARN}/x"},
            {
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": f"{BUCKET_ARN}/*",
                "NotResource": f"{BUCKET_ARN}/x",
            },
        )
        == []
    )


def test_a_deny_next_to_an_allow_does_not_add_its_actions(
    role: IamRole, bucket: CloudResource
) -> None:
    [change] = changes(
        role,
        allow("s3:GetObject", f"{BUCKET_ARN}/*"),
        {"Effect": "Deny", "Action": "s3:DeleteObject", "Resource": f"{BUCKET_ARN}/*"},
    )
    assert change.payload["statements"][0]["Action"] == ["s3:GetObject"]


def test_two_statements_on_the_same_bucket_make_one_change(
    role: IamRole, bucket: CloudResource
) -> None:
    result = changes(
        role,
        allow("s3:GetObject", f"{BUCKET_ARN}/in/*"),
        allow(["s3:PutObject", "s3:GetObject"], [f"{BUCKET_ARN}/out/*", f"{BUCKET_ARN}/in/*"]),
    )
    assert len(result) == 1
    [statement] = result[0].payload["statements"]
    assert statement["Action"] == ["s3:GetObject", "s3:PutObject"]
    assert statement["Resource"] == [f"{BUCKET_ARN}/in/*", f"{BUCKET_ARN}/out/*"]


def test_the_sid_is_stable_across_calls_and_differs_per_role(
    role: IamRole, bucket: CloudResource
) -> None:
    first = changes(role, allow("s3:GetObject", f"{BUCKET_ARN}/*"))
    second = changes(role, allow(["s3:PutObject"], f"{BUCKET_ARN}/other/*"))
    sid = first[0].payload["statements"][0]["Sid"]
    assert second[0].payload["statements"][0]["Sid"] == sid
    assert re.fullmatch(r"[A-Za-z0-9]+", sid)
    assert sid != statement_sid("arn:aws:iam::111111111111:role/another")


def test_the_same_document_gives_the_same_changes_whatever_the_order(
    role: IamRole, bucket: CloudResource, data_account: AwsAccount
) -> None:
    inventory_row(IamRole, data_account, TARGET_ROLE_ARN, "deployer")
    statements = [
        allow(["sqs:SendMessage", "sqs:GetQueueUrl"], QUEUE_ARN),
        allow("s3:GetObject", [f"{BUCKET_ARN}/b/*", f"{BUCKET_ARN}/a/*"]),
        allow("sts:AssumeRole", TARGET_ROLE_ARN),
    ]
    forward = changes(role, *statements)
    backward = changes(role, *reversed(statements))
    assert forward == backward
    assert [c.target_arn for c in forward] == [TARGET_ROLE_ARN, BUCKET_ARN, QUEUE_ARN]


def test_a_single_statement_object_is_read_like_a_list(
    role: IamRole, bucket: CloudResource
) -> None:
    document = {"Statement": allow("s3:GetObject", f"{BUCKET_ARN}/*")}
    assert len(cross_account_changes(role=role, document=document)) == 1


@pytest.mark.parametrize(
    "document",
    [
        {},
        [],
        "text",
        None,
        {"Statement": None},
        {"Statement": "s3:GetObject"},
        {"Statement": [None, 1, "x", [], {}]},
        {"Statement": [{"Effect": "Allow"}]},
        {"Statement": [{"Effect": "Allow", "Action": 5, "Resource": {"a": 1}}]},
        {"Statement": [{"Effect": ["Allow"], "Action": "s3:GetObject", "Resource": BUCKET_ARN}]},
        {"Statement": [allow([None, 3, ["s3:GetObject"], "s3:"], [BUCKET_ARN])]},
        {"Statement": [allow("s3:GetObject", [None, 7, {"x": 1}, "", "arn", "arn:aws:s3"])]},
        {"Statement": [allow("s3:GetObject", "arn:aws:s3:us-east-1:222222222222:accesspoint/x")]},
        {"Statement": [allow("sns:Publish", f"{TOPIC_ARN}:subscription-id")]},
        {"Statement": [allow("sts:Assume[", TARGET_ROLE_ARN)]},
        {"Statement": [allow("s3:GetObject", "arn:aws-cn:s3:::acme-invoices/*")]},
    ],
)
def test_odd_documents_give_no_changes_and_never_raise(
    role: IamRole, bucket: CloudResource, document: Any
) -> None:
    assert cross_account_changes(role=role, document=document) == []


def test_good_entries_of_an_odd_document_still_count(role: IamRole, bucket: CloudResource) -> None:
    [change] = changes(
        role,
        None,
        allow([None, "s3:GetObject", {"x": 1}], [7, f"{BUCKET_ARN}/*", None]),
    )
    assert change.payload["statements"][0]["Action"] == ["s3:GetObject"]
    assert change.payload["statements"][0]["Resource"] == [f"{BUCKET_ARN}/*"]
