"""The demo organisation: a hub and three spoke accounts in the embedded AWS.

Used by `manage.py demo`, by the tests and by the benchmarks. Every call goes
through iamportal.aws, so it seeds whatever endpoint that points at (moto's
in-process mock in tests, the ThreadedMotoServer in the demo). It refuses to
run against real AWS.
"""

from __future__ import annotations

import hashlib
import io
import json
import secrets
import threading
import time
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.exceptions import ClientError
from django.conf import settings
from django.contrib.auth.models import User
from django.utils import timezone

from accounts.models import AwsAccount
from accounts.services import account_add
from accounts.usage.models import RightsizingPolicy
from iamportal import aws
from iamportal.auth import user_groups_sync
from iamportal.config_standin import ConfigAggregatorStandIn, Item
from requests_app.models import ApprovalPolicy, PolicyTemplate
from requests_app.services import approval_policy_save

HUB_ACCOUNT_ID = "123456789012"  # moto's default account: the identity iamportal runs as
ENVIRONMENTS = ("prod", "staging", "dev")
AUTH_TAG = "iamportal-authorized"
AUTH_CLI_TAG = "iamportal-authorized-cli-only"

DEMO_APPROVAL_POLICY = "Read-only outside production, up to 8 hours"
DEMO_USERS = {
    # username: (groups, superuser for break-glass access)
    "alice": (["team-payments", "engineering"], False),
    "rita": (["security-reviewers", "engineering"], False),
    # A second reviewer: acme-prod needs two distinct approvals.
    "sam": (["security-reviewers"], False),
    "admin": (["iamportal-admins"], True),
}


def _doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def _trust(principal: dict[str, str]) -> str:
    action = "sts:AssumeRoleWithWebIdentity" if "Federated" in principal else "sts:AssumeRole"
    return _doc({"Effect": "Allow", "Principal": principal, "Action": action})


def _allow(actions: list[str], resources: list[str] | str) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": actions, "Resource": resources}


SPOKE_READ_POLICY = _doc(
    _allow(
        [
            "iam:GetAccountAuthorizationDetails",
            "iam:ListRoles",
            "iam:GetRole",
            "iam:ListRolePolicies",
            "iam:GetRolePolicy",
            "iam:ListAttachedRolePolicies",
            "iam:ListUsers",
            "iam:ListAccessKeys",
            "iam:GetAccessKeyLastUsed",
            "s3:ListAllMyBuckets",
            "s3:GetBucketLocation",
            "s3:GetBucketPolicy",
            "s3:GetBucketTagging",
            "sqs:ListQueues",
            "sqs:GetQueueAttributes",
            "sqs:ListQueueTags",
            "sns:ListTopics",
            "sns:GetTopicAttributes",
            "sns:ListTagsForResource",
            "rds:DescribeDBInstances",
            "rds:DescribeDBClusters",
            "redshift:DescribeClusters",
        ],
        "*",
    )
)


@dataclass
class DemoAccount:
    account_id: str
    environment: str
    name: str
    roles: list[str] = field(default_factory=list)
    policies: list[str] = field(default_factory=list)
    buckets: list[str] = field(default_factory=list)
    queues: list[str] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)
    users: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    databases: list[str] = field(default_factory=list)
    # DynamoDB tables, KMS keys and Lambda functions: only AWS Config reads them.
    config_resources: list[str] = field(default_factory=list)
    # What the embedded AWS could not do, and what the demo did instead.
    notes: list[str] = field(default_factory=list)

    @property
    def resource_count(self) -> int:
        return len(self.buckets) + len(self.queues) + len(self.topics)


def _assert_embedded() -> None:
    # The embedded AWS answers as its default account; a real one never does.
    identity = aws.client("sts").get_caller_identity()
    if identity["Account"] != HUB_ACCOUNT_ID:
        raise RuntimeError(
            f"refusing to seed the demo organisation into account {identity['Account']}: "
            "the demo runs only against the embedded AWS"
        )


def account_session(account_id: str) -> boto3.Session:
    """An administrator session inside a member account, as Organizations sets one up."""
    creds = aws.client("sts").assume_role(
        RoleArn=aws.role_arn(account_id, "OrganizationAccountAccessRole"),
        RoleSessionName="iamportal-demo-seed",
    )["Credentials"]
    return aws.new_session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name=aws.default_region(),
    )


def spoke_role_create(iam: Any, *, hub_account_id: str = HUB_ACCOUNT_ID) -> None:
    iam.create_role(
        RoleName=settings.IAMPORTAL_SPOKE_ROLE_NAME,
        AssumeRolePolicyDocument=_trust({"AWS": f"arn:aws:iam::{hub_account_id}:root"}),
        Description="Assumed by iamportal to read inventory and apply approved changes.",
    )
    iam.put_role_policy(
        RoleName=settings.IAMPORTAL_SPOKE_ROLE_NAME,
        PolicyName="iamportal-inventory-read",
        PolicyDocument=SPOKE_READ_POLICY,
    )


def _roles(env: str, account_id: str) -> list[dict[str, Any]]:
    bucket = f"acme-{env}-payments-data"
    queue = f"arn:aws:sqs:us-east-1:{account_id}:payments-events"
    hub_root = {"AWS": f"arn:aws:iam::{HUB_ACCOUNT_ID}:root"}
    return [
        {
            "name": "PlatformAdmin",
            "trust": hub_root,
            "description": "Full administration for the platform team.",
            "managed": ["acme-admin"],
            "tags": {AUTH_TAG: "platform-admins"},
        },
        {
            "name": "ReadOnly",
            "trust": hub_root,
            "description": "Read-only access to the whole account.",
            "managed": ["acme-readonly"],
            "tags": {AUTH_TAG: "engineering"},
        },
        {
            "name": "payments-api",
            "path": "/service/",
            "trust": {"Service": "ecs-tasks.amazonaws.com"},
            "description": "The payments API service (ECS).",
            "inline": {
                "payments-data": _doc(
                    _allow(["s3:ListBucket"], f"arn:aws:s3:::{bucket}"),
                    _allow(["s3:GetObject", "s3:PutObject"], f"arn:aws:s3:::{bucket}/*"),
                ),
                "payments-events": _doc(_allow(["sqs:SendMessage"], queue)),
            },
            "managed": ["acme-logs-write"],
            "tags": {AUTH_TAG: "team-payments", "owner": "payments"},
        },
        {
            "name": "payments-batch",
            "path": "/service/",
            "trust": {"Service": "lambda.amazonaws.com"},
            "description": "Nightly settlement jobs (Lambda).",
            "inline": {
                "consume-events": _doc(
                    _allow(["sqs:ReceiveMessage", "sqs:DeleteMessage"], queue),
                ),
            },
            "managed": ["acme-logs-write"],
            "tags": {AUTH_CLI_TAG: "team-payments", "owner": "payments"},
        },
        {
            "name": "web-frontend",
            "path": "/service/",
            "trust": {"Service": "ec2.amazonaws.com"},
            "description": "The public web site.",
            "inline": {
                "static-assets": _doc(
                    _allow(["s3:GetObject"], f"arn:aws:s3:::acme-{env}-static-assets/*")
                ),
            },
            "tags": {AUTH_TAG: "team-web:alice@example.com", "owner": "web"},
        },
        {
            "name": "ci-deploy",
            "trust": {
                "Federated": f"arn:aws:iam::{account_id}:oidc-provider/token.actions.example.com"
            },
            "description": "Deploys from CI.",
            "inline": {
                "deploy": _doc(
                    _allow(
                        ["ecs:UpdateService", "ecs:DescribeServices"],
                        f"arn:aws:ecs:us-east-1:{account_id}:service/*",
                    )
                ),
            },
            "boundary": "acme-deploy-boundary",
            "tags": {AUTH_CLI_TAG: "platform-admins"},
        },
    ]


def _policies() -> dict[str, str]:
    return {
        "acme-admin": _doc(_allow(["*"], "*")),
        "acme-readonly": _doc(
            _allow(["s3:Get*", "s3:List*", "sqs:Get*", "sqs:List*", "sns:Get*", "sns:List*"], "*")
        ),
        "acme-logs-write": _doc(
            _allow(
                ["logs:CreateLogStream", "logs:PutLogEvents"], "arn:aws:logs:*:*:log-group:/acme/*"
            )
        ),
        "acme-deploy-boundary": _doc(_allow(["ecs:*", "logs:*"], "*")),
    }


def _account_seed(session: boto3.Session, env: str, account_id: str, demo: DemoAccount) -> None:
    iam = aws.client("iam", session=session)
    spoke_role_create(iam)
    demo.roles.append(settings.IAMPORTAL_SPOKE_ROLE_NAME)
    policy_arns = {}
    for name, document in _policies().items():
        arn = iam.create_policy(PolicyName=name, PolicyDocument=document, Path="/acme/")["Policy"][
            "Arn"
        ]
        policy_arns[name] = arn
        demo.policies.append(name)
    roles = _roles(env, account_id)
    if env == "prod":
        roles.append(
            {
                "name": "break-glass",
                "trust": {"AWS": f"arn:aws:iam::{HUB_ACCOUNT_ID}:root"},
                "description": "Emergency access; every use is reviewed.",
                "managed": ["acme-admin"],
                "tags": {AUTH_TAG: "platform-admins"},
            }
        )
    if env != "prod":
        roles.append(
            {
                "name": "data-analyst",
                "trust": {"AWS": f"arn:aws:iam::{HUB_ACCOUNT_ID}:root"},
                "description": "Ad-hoc queries over non-production data.",
                "managed": ["acme-readonly"],
                "tags": {AUTH_TAG: "team-data:engineering"},
            }
        )
    for role in roles:
        params: dict[str, Any] = {
            "RoleName": role["name"],
            "Path": role.get("path", "/"),
            "AssumeRolePolicyDocument": _trust(role["trust"]),
            "Description": role["description"],
            "MaxSessionDuration": 3600 if env == "prod" else 43200,
            "Tags": [{"Key": k, "Value": v} for k, v in role.get("tags", {}).items()],
        }
        if "boundary" in role:
            params["PermissionsBoundary"] = policy_arns[role["boundary"]]
        iam.create_role(**params)
        for policy_name, document in role.get("inline", {}).items():
            iam.put_role_policy(
                RoleName=role["name"], PolicyName=policy_name, PolicyDocument=document
            )
        for managed in role.get("managed", []):
            iam.attach_role_policy(RoleName=role["name"], PolicyArn=policy_arns[managed])
        demo.roles.append(role["name"])

    s3 = aws.client("s3", session=session)
    payments_api = f"arn:aws:iam::{account_id}:role/service/payments-api"
    for suffix, policy in (
        (
            "payments-data",
            _doc(
                {
                    "Sid": "PaymentsApi",
                    "Effect": "Allow",
                    "Principal": {"AWS": payments_api},
                    "Action": ["s3:GetObject", "s3:PutObject"],
                    "Resource": f"arn:aws:s3:::acme-{env}-payments-data/*",
                }
            ),
        ),
        ("static-assets", None),
        ("audit-logs", None),
    ):
        name = f"acme-{env}-{suffix}"
        s3.create_bucket(Bucket=name)
        s3.put_bucket_tagging(
            Bucket=name,
            Tagging={"TagSet": [{"Key": "env", "Value": env}, {"Key": "data", "Value": suffix}]},
        )
        if policy:
            s3.put_bucket_policy(Bucket=name, Policy=policy)
        demo.buckets.append(name)

    sns = aws.client("sns", session=session)
    topic_arns = {}
    for topic in ("deploy-notifications", "payments-alerts"):
        arn = sns.create_topic(Name=topic, Tags=[{"Key": "env", "Value": env}])["TopicArn"]
        topic_arns[topic] = arn
        demo.topics.append(topic)

    sqs = aws.client("sqs", session=session)
    for queue in ("payments-events", "payments-events-dlq"):
        attributes: dict[str, str] = {}
        if queue == "payments-events":
            attributes["Policy"] = _doc(
                {
                    "Sid": "AlertsFanOut",
                    "Effect": "Allow",
                    "Principal": {"Service": "sns.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": f"arn:aws:sqs:us-east-1:{account_id}:{queue}",
                    "Condition": {"ArnEquals": {"aws:SourceArn": topic_arns["payments-alerts"]}},
                }
            )
        sqs.create_queue(QueueName=queue, Attributes=attributes, tags={"env": env})
        demo.queues.append(queue)

    _identities_seed(iam, policy_arns, demo)
    if env == "prod":
        _databases_seed(session, demo)
    _config_resources_seed(session, env, account_id, demo)


# Users and groups every demo account has: (name, path, groups, with an access key).
DEMO_IAM_USERS = (
    ("deploy-bot", "/automation/", ["deployers"], True),
    ("legacy-reporting", "/", ["readers"], True),
    ("jane.doe", "/people/", ["readers", "deployers"], False),
)
DEMO_IAM_GROUPS: dict[str, dict[str, Any]] = {
    "deployers": {"managed": [], "inline": _doc(_allow(["ecs:UpdateService"], "*"))},
    "readers": {"managed": ["acme-reports-read"], "inline": None},
}


def _identities_seed(iam: Any, policy_arns: dict[str, str], demo: DemoAccount) -> None:
    # A policy of their own, so the roles' policies keep their attachment counts.
    policy_arns["acme-reports-read"] = iam.create_policy(
        PolicyName="acme-reports-read",
        Path="/acme/",
        PolicyDocument=_doc(_allow(["s3:GetObject"], "arn:aws:s3:::acme-*-audit-logs/*")),
    )["Policy"]["Arn"]
    demo.policies.append("acme-reports-read")
    for name, spec in DEMO_IAM_GROUPS.items():
        iam.create_group(GroupName=name)
        for managed in spec["managed"]:
            iam.attach_group_policy(GroupName=name, PolicyArn=policy_arns[managed])
        if spec["inline"]:
            iam.put_group_policy(GroupName=name, PolicyName=name, PolicyDocument=spec["inline"])
        demo.groups.append(name)
    for name, path, groups, with_key in DEMO_IAM_USERS:
        iam.create_user(UserName=name, Path=path, Tags=[{"Key": "owner", "Value": "platform"}])
        for group in groups:
            iam.add_user_to_group(GroupName=group, UserName=name)
        if with_key:
            iam.create_access_key(UserName=name)
        demo.users.append(name)


# Two databases with IAM authentication in the production account.
DEMO_DATABASES = (("payments-db", "postgres", 5432), ("reporting-db", "mysql", 3306))


# The database user payments-api connects to payments-db as, with IAM authentication.
DEMO_DB_USER = "payments_app"


def _databases_seed(session: boto3.Session, demo: DemoAccount) -> None:
    """The databases, and an inline policy letting payments-api connect to
    payments-db as DEMO_DB_USER (so the Databases page offers Get a password)."""
    rds = aws.client("rds", session=session)
    resource_ids: set[str] = set()
    try:
        for name, engine, port in DEMO_DATABASES:
            created = rds.create_db_instance(
                DBInstanceIdentifier=name,
                Engine=engine,
                DBInstanceClass="db.t3.micro",
                AllocatedStorage=20,
                Port=port,
                MasterUsername="admin_user",
                MasterUserPassword=secrets.token_urlsafe(16),
                EnableIAMDatabaseAuthentication=True,
                Tags=[{"Key": "owner", "Value": "payments"}],
            )["DBInstance"]
            demo.databases.append(name)
            resource_ids.add(created["DbiResourceId"])
            if name == "payments-db":
                _database_connect_grant(session, demo, created)
        if len(resource_ids) < len(DEMO_DATABASES):
            demo.notes.append(
                "the embedded AWS gives every RDS instance the same resource id, so the "
                "payments-api grant on payments-db reaches reporting-db too"
            )
    except (ClientError, NotImplementedError) as exc:
        demo.notes.append(f"the embedded AWS could not create RDS instances ({exc}): no databases")


def _database_connect_grant(
    session: boto3.Session, demo: DemoAccount, instance: dict[str, Any]
) -> None:
    region = aws.client("rds", session=session).meta.region_name
    resource = (
        f"arn:aws:rds-db:{region}:{demo.account_id}:dbuser:"
        f"{instance['DbiResourceId']}/{DEMO_DB_USER}"
    )
    aws.client("iam", session=session).put_role_policy(
        RoleName="payments-api",
        PolicyName="payments-db-connect",
        PolicyDocument=_doc(
            {
                "Sid": "ConnectToPaymentsDb",
                "Effect": "Allow",
                "Action": "rds-db:connect",
                "Resource": resource,
            }
        ),
    )


def _guardrails_seed(org: Any, accounts: list[DemoAccount]) -> None:
    """An OU tree (Root / Workloads / Prod and NonProd) holding the demo accounts,
    with one service control policy on Workloads. Without the Organizations
    calls in the embedded AWS, the accounts stay under the root."""
    try:
        root_id = org.list_roots()["Roots"][0]["Id"]
        workloads = org.create_organizational_unit(ParentId=root_id, Name="Workloads")
        workloads_id = workloads["OrganizationalUnit"]["Id"]
        units = {
            name: org.create_organizational_unit(ParentId=workloads_id, Name=name)[
                "OrganizationalUnit"
            ]["Id"]
            for name in ("Prod", "NonProd")
        }
        for demo in accounts:
            unit = units["Prod" if demo.environment == "prod" else "NonProd"]
            org.move_account(
                AccountId=demo.account_id, SourceParentId=root_id, DestinationParentId=unit
            )
        policy = org.create_policy(
            Name="deny-leaving-and-root",
            Description="Accounts stay in the organisation; nobody works as the root user.",
            Type="SERVICE_CONTROL_POLICY",
            Content=_doc(
                {"Effect": "Deny", "Action": "organizations:LeaveOrganization", "Resource": "*"},
                {
                    "Effect": "Deny",
                    "Action": "*",
                    "Resource": "*",
                    "Condition": {"StringLike": {"aws:PrincipalArn": "arn:aws:iam::*:root"}},
                },
            ),
        )["Policy"]["PolicySummary"]
        org.attach_policy(PolicyId=policy["Id"], TargetId=workloads_id)
    except (ClientError, NotImplementedError) as exc:
        for demo in accounts:
            demo.notes.append(
                f"the embedded AWS could not build the OU tree ({exc}): the account stays "
                "under the root"
            )


DENIED_EVENTS_QUEUE = "iamportal-denied-events"


def _denied_event(
    *, number: int, account_id: str, role: str, session: str, call: str, resource: str, hours: int
) -> str:
    """A CloudTrail AccessDenied record for a call by a role session, as the
    organisation's EventBridge rule delivers it."""
    service, name = call.split(":")
    role_arn = f"arn:aws:iam::{account_id}:role/{role}"
    at = (timezone.now() - timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")
    event_id = f"demo-{account_id}-{number}"
    detail = {
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": f"AROADEMO{number:08d}:{session}",
            "arn": f"arn:aws:sts::{account_id}:assumed-role/{role.rsplit('/', 1)[-1]}/{session}",
            "accountId": account_id,
            "sessionContext": {
                "sessionIssuer": {"type": "Role", "arn": role_arn, "accountId": account_id}
            },
        },
        "eventTime": at,
        "eventSource": f"{service}.amazonaws.com",
        "eventName": name,
        "errorCode": "AccessDenied",
        "errorMessage": "Access Denied",
        "resources": [{"ARN": resource}],
        "eventID": event_id,
    }
    return json.dumps(
        {
            "version": "0",
            "id": event_id,
            "detail-type": "AWS API Call via CloudTrail",
            "source": f"aws.{service}",
            "account": account_id,
            "time": at,
            "region": "us-east-1",
            "detail": detail,
        }
    )


def denied_events_seed(accounts: list[DemoAccount]) -> str:
    """The queue the organisation's EventBridge rule would feed, in the hub, with
    a few calls AWS refused to demo users' sessions; returns its URL."""
    _assert_embedded()
    sqs = aws.client("sqs")
    url = str(sqs.create_queue(QueueName=DENIED_EVENTS_QUEUE)["QueueUrl"])
    staging = next(a for a in accounts if a.environment == "staging")
    account = staging.account_id
    calls = [
        # alice's service role reads a bucket it was never given, three times.
        *(
            ("service/payments-api", "alice@example.com", "s3:GetObject", hours)
            for hours in (1, 5, 26)
        ),
        ("service/payments-api", "alice@example.com", "sqs:ReceiveMessage", 3),
        # rita tried to write with the read-only role.
        ("ReadOnly", "rita@example.com", "s3:PutObject", 8),
    ]
    resources = {
        "s3:GetObject": "arn:aws:s3:::acme-staging-static-assets/index.html",
        "sqs:ReceiveMessage": f"arn:aws:sqs:us-east-1:{account}:payments-events",
        "s3:PutObject": "arn:aws:s3:::acme-staging-payments-data/reports/today.csv",
    }
    for number, (role, session, call, hours) in enumerate(calls):
        body = _denied_event(
            number=number,
            account_id=account,
            role=role,
            session=session,
            call=call,
            resource=resources[call],
            hours=hours,
        )
        sqs.send_message(QueueUrl=url, MessageBody=body)
    return url


# --- AWS Config -----------------------------------------------------------------------

DEMO_AGGREGATOR = "acme-config"
# acme-dev stays out of the aggregator: its resources are read directly.
DEMO_AGGREGATED = ("prod", "staging")
# What `make demo` prints about it.
DEMO_CONFIG_NOTE = (
    "the embedded AWS keeps the AWS Config aggregator but cannot answer its aggregate "
    "queries across accounts, for DynamoDB, KMS or Lambda, with tags, or with "
    "SelectAggregateResourceConfig: a stand-in answers them from the embedded AWS "
    "(acme-prod and acme-staging; acme-dev is read directly)"
)
# What the embedded AWS records no time for is "recorded" at this one.
DEMO_RECORDED = datetime(2026, 1, 1, tzinfo=UTC)


def _lambda_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "def handle(event, context):\n    return event\n")
    return buffer.getvalue()


def _config_resources_seed(
    session: boto3.Session, env: str, account_id: str, demo: DemoAccount
) -> None:
    """A DynamoDB table, a KMS key and a Lambda function (with a resource policy):
    types iamportal reads only through AWS Config."""
    try:
        dynamodb = aws.client("dynamodb", session=session)
        dynamodb.create_table(
            TableName="payments-ledger",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            Tags=[{"Key": "env", "Value": env}, {"Key": "team", "Value": "payments"}],
        )
        demo.config_resources.append("payments-ledger")
        kms = aws.client("kms", session=session)
        kms.create_key(
            Description=f"acme-{env} payments data",
            Tags=[{"TagKey": "env", "TagValue": env}],
        )
        demo.config_resources.append("kms key")
        lambdas = aws.client("lambda", session=session)
        lambdas.create_function(
            FunctionName="payments-webhook",
            Runtime="python3.12",
            Role=f"arn:aws:iam::{account_id}:role/service/payments-api",
            Handler="handler.handle",
            Code={"ZipFile": _lambda_zip()},
            Tags={"env": env, "team": "payments"},
        )
        lambdas.add_permission(
            FunctionName="payments-webhook",
            StatementId="AlertsInvoke",
            Action="lambda:InvokeFunction",
            Principal="sns.amazonaws.com",
            SourceArn=f"arn:aws:sns:us-east-1:{account_id}:payments-alerts",
        )
        demo.config_resources.append("payments-webhook")
    except (ClientError, NotImplementedError) as exc:
        demo.notes.append(
            f"the embedded AWS could not create a DynamoDB table, KMS key or Lambda function "
            f"({exc}): AWS Config shows fewer types"
        )


def _aggregator_seed(accounts: list[DemoAccount]) -> None:
    """The aggregator, in the hub account, over acme-prod and acme-staging. The
    embedded AWS keeps it but cannot answer its queries across accounts (nor
    for DynamoDB, KMS or Lambda, nor with tags): `DemoConfigAggregator` does."""
    aggregated = [d for d in accounts if d.environment in DEMO_AGGREGATED]
    aws.client("config").put_configuration_aggregator(
        ConfigurationAggregatorName=DEMO_AGGREGATOR,
        AccountAggregationSources=[
            {"AccountIds": [d.account_id for d in aggregated], "AllAwsRegions": True}
        ],
    )


def _config_item(
    account_id: str,
    resource_type: str,
    resource_id: str,
    *,
    name: str,
    arn: str,
    recorded: datetime | None,
    configuration: dict[str, Any],
    tags: dict[str, str],
    supplementary: dict[str, Any] | None = None,
    region: str = "us-east-1",
) -> Item:
    return {
        "resourceType": resource_type,
        "resourceId": resource_id,
        "resourceName": name,
        "arn": arn,
        "awsRegion": region,
        "accountId": account_id,
        "configurationItemCaptureTime": (recorded or DEMO_RECORDED).astimezone(UTC),
        "configuration": configuration,
        "supplementaryConfiguration": supplementary or {},
        "tags": tags,
    }


def _epoch(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (TypeError, ValueError):
        return None


def config_items_read(session: boto3.Session, account_id: str) -> list[Item]:
    """What AWS Config would record in one account of the embedded AWS: its S3
    buckets, SQS queues, SNS topics, DynamoDB tables, KMS keys and Lambda
    functions (us-east-1), with their tags and resource policies."""
    items: list[Item] = []
    s3 = aws.client("s3", session=session)
    for bucket in s3.list_buckets().get("Buckets", []):
        name = bucket["Name"]
        try:
            policy = s3.get_bucket_policy(Bucket=name)["Policy"]
        except ClientError:
            policy = None
        try:
            tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=name)["TagSet"]}
        except ClientError:
            tags = {}
        items.append(
            _config_item(
                account_id,
                "AWS::S3::Bucket",
                name,
                name=name,
                arn=f"arn:aws:s3:::{name}",
                recorded=bucket.get("CreationDate"),
                configuration={"name": name, "creationDate": str(bucket.get("CreationDate", ""))},
                tags=tags,
                supplementary={"BucketPolicy": {"policyText": policy}},
            )
        )
    sqs = aws.client("sqs", session=session)
    for url in sqs.list_queues().get("QueueUrls", []):
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        arn = attrs["QueueArn"]
        configuration = {k: v for k, v in attrs.items() if k != "Policy"}
        if attrs.get("Policy"):
            configuration["Policy"] = attrs["Policy"]
        items.append(
            _config_item(
                account_id,
                "AWS::SQS::Queue",
                url,
                name=arn.rsplit(":", 1)[-1],
                arn=arn,
                recorded=_epoch(attrs.get("LastModifiedTimestamp")),
                configuration=configuration,
                tags=sqs.list_queue_tags(QueueUrl=url).get("Tags", {}),
            )
        )
    sns = aws.client("sns", session=session)
    for topic in sns.list_topics().get("Topics", []):
        arn = topic["TopicArn"]
        attrs = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
        tags = sns.list_tags_for_resource(ResourceArn=arn).get("Tags", [])
        items.append(
            _config_item(
                account_id,
                "AWS::SNS::Topic",
                arn,
                name=arn.rsplit(":", 1)[-1],
                arn=arn,
                recorded=None,
                configuration={"TopicArn": arn, "DisplayName": attrs.get("DisplayName", "")},
                tags={t["Key"]: t["Value"] for t in tags},
            )
        )
    dynamodb = aws.client("dynamodb", session=session)
    for table_name in dynamodb.list_tables().get("TableNames", []):
        table = dynamodb.describe_table(TableName=table_name)["Table"]
        tags = dynamodb.list_tags_of_resource(ResourceArn=table["TableArn"]).get("Tags", [])
        items.append(
            _config_item(
                account_id,
                "AWS::DynamoDB::Table",
                table_name,
                name=table_name,
                arn=table["TableArn"],
                recorded=table.get("CreationDateTime"),
                configuration={
                    "tableName": table_name,
                    "tableStatus": table.get("TableStatus", ""),
                    "itemCount": table.get("ItemCount", 0),
                    "billingMode": (table.get("BillingModeSummary") or {}).get("BillingMode", ""),
                    "keySchema": table.get("KeySchema", []),
                },
                tags={t["Key"]: t["Value"] for t in tags},
            )
        )
    kms = aws.client("kms", session=session)
    for key in kms.list_keys().get("Keys", []):
        meta = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
        tags = kms.list_resource_tags(KeyId=key["KeyId"]).get("Tags", [])
        items.append(
            _config_item(
                account_id,
                "AWS::KMS::Key",
                key["KeyId"],
                name=key["KeyId"],
                arn=meta["Arn"],
                recorded=meta.get("CreationDate"),
                configuration={
                    "description": meta.get("Description", ""),
                    "keyState": meta.get("KeyState", ""),
                    "keyUsage": meta.get("KeyUsage", ""),
                    "keyManager": meta.get("KeyManager", ""),
                },
                tags={t["TagKey"]: t["TagValue"] for t in tags},
            )
        )
    lambdas = aws.client("lambda", session=session)
    for function in lambdas.list_functions().get("Functions", []):
        name = function["FunctionName"]
        try:
            policy = lambdas.get_policy(FunctionName=name)["Policy"]
        except ClientError:
            policy = None
        items.append(
            _config_item(
                account_id,
                "AWS::Lambda::Function",
                name,
                name=name,
                arn=function["FunctionArn"],
                recorded=None,
                configuration={
                    "functionName": name,
                    "runtime": function.get("Runtime", ""),
                    "handler": function.get("Handler", ""),
                    "memorySize": function.get("MemorySize", 0),
                    "timeout": function.get("Timeout", 0),
                },
                tags=lambdas.list_tags(Resource=function["FunctionArn"]).get("Tags", {}),
                supplementary={"Policy": policy} if policy else None,
            )
        )
    return items


class DemoConfigAggregator(ConfigAggregatorStandIn):
    """The demo's aggregator: the accounts the embedded AWS's aggregator names,
    and in each what `config_items_read` finds there, read again at most every
    few seconds (a sync asks for the same account several times)."""

    FRESH_SECONDS = 20.0

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._lock = threading.Lock()
        self._read: dict[str, tuple[float, list[Item]]] = {}

    def items_for(self, account_id: str) -> list[Item]:
        with self._lock:
            cached = self._read.get(account_id)
            if cached and time.monotonic() - cached[0] < self.FRESH_SECONDS:
                return cached[1]
        items = (
            config_items_read(account_session(account_id), account_id)
            if account_id in self._aggregated()
            else []
        )
        with self._lock:
            self._read[account_id] = (time.monotonic(), items)
        return items

    def _aggregated(self) -> set[str]:
        found = aws.client("config").describe_configuration_aggregators(
            ConfigurationAggregatorNames=[self.name]
        )["ConfigurationAggregators"]
        return {
            account_id
            for aggregator in found
            for source in aggregator.get("AccountAggregationSources", [])
            for account_id in source.get("AccountIds", [])
        }


def config_standin_install() -> None:
    """Answer the aggregator's queries with `DemoConfigAggregator` in this
    process; only against an embedded AWS on loopback."""
    host = urlsplit(settings.AWS_ENDPOINT_URL or "").hostname
    if host not in ("127.0.0.1", "localhost"):
        raise RuntimeError(
            "IAMPORTAL_DEMO_CONFIG answers AWS Config queries only for an embedded AWS on "
            "loopback (AWS_ENDPOINT_URL)"
        )
    standin = DemoConfigAggregator(settings.IAMPORTAL_CONFIG_AGGREGATOR or DEMO_AGGREGATOR)
    aws.on_hub_call("before-call.config-service", standin)


def account_id_seed(name: str) -> int:
    """A stable number for an account name (Python's hash() changes every run)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")


def organisation_seed() -> list[DemoAccount]:
    """Create the organisation and seed every spoke account. AWS side only."""
    _assert_embedded()
    org = aws.client("organizations")
    org.create_organization(FeatureSet="ALL")
    accounts = []
    for env in ENVIRONMENTS:
        name = f"acme-{env}"
        # The embedded AWS draws account ids at random; seeded from the name, it draws
        # the same id for the same account on every run, so bookmarks and ARNs keep working.
        aws.embedded_aws_seed(seed=account_id_seed(name))
        status = org.create_account(Email=f"aws-{env}@example.com", AccountName=name)[
            "CreateAccountStatus"
        ]
        demo = DemoAccount(account_id=status["AccountId"], environment=env, name=name)
        _account_seed(account_session(demo.account_id), env, demo.account_id, demo)
        accounts.append(demo)
    _guardrails_seed(org, accounts)
    _aggregator_seed(accounts)
    return accounts


def accounts_onboard(demo_accounts: list[DemoAccount]) -> list[AwsAccount]:
    return [
        account_add(
            account_id=d.account_id,
            name=d.name,
            environment=d.environment,
            approvals_required=2 if d.environment == "prod" else 1,
        )
        for d in demo_accounts
    ]


def users_create(password: str | None = None) -> str:
    """The demo logins; returns their password (generated when none is given)."""
    password = password or secrets.token_urlsafe(9)
    for username, (groups, is_admin) in DEMO_USERS.items():
        user, _ = User.objects.get_or_create(
            username=username, defaults={"email": f"{username}@example.com"}
        )
        user.is_superuser = is_admin
        user.set_password(password)
        user.save()
        user_groups_sync(user=user, group_names=groups)
    return password


def _template_doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)}, indent=2)


_REGION = {"name": "region", "label": "Region", "default": "us-east-1"}
_ACCOUNT = {
    "name": "account_id",
    "label": "Account id",
    "help": "The 12-digit account the resource is in.",
    "example": "123456789012",
}

DEMO_TEMPLATES: list[dict[str, Any]] = [
    {
        "name": "Read-only database access",
        "description": "Connect to an RDS or Aurora database as one database user, with IAM "
        "database authentication. The database user must exist and be granted rds_iam.",
        "parameters": [
            _REGION,
            _ACCOUNT,
            {
                "name": "db_resource_id",
                "label": "Database resource id",
                "help": "The DbiResourceId (or cluster resource id), not the instance name.",
                "example": "db-ABCDEFGHIJKLMNOPQRSTUVWXY1",
            },
            {
                "name": "db_user",
                "label": "Database user",
                "help": "A read-only user in the database.",
                "example": "readonly",
            },
        ],
        "document": _template_doc(
            {
                "Sid": "ConnectAsDatabaseUser",
                "Effect": "Allow",
                "Action": "rds-db:connect",
                "Resource": "arn:aws:rds-db:{{region}}:{{account_id}}:dbuser:"
                "{{db_resource_id}}/{{db_user}}",
            }
        ),
    },
    {
        "name": "Read objects in a bucket",
        "description": "List a bucket and read every object in it.",
        "parameters": [{"name": "bucket", "label": "Bucket name", "example": "acme-dev-data"}],
        "document": _template_doc(
            {
                "Sid": "ListBucket",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": "arn:aws:s3:::{{bucket}}",
            },
            {
                "Sid": "ReadObjects",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::{{bucket}}/*",
            },
        ),
    },
    {
        "name": "Send to a queue",
        "description": "Send messages to one SQS queue.",
        "parameters": [
            _REGION,
            _ACCOUNT,
            {"name": "queue", "label": "Queue name", "example": "payments-events"},
        ],
        "document": _template_doc(
            {
                "Sid": "SendMessages",
                "Effect": "Allow",
                "Action": ["sqs:SendMessage", "sqs:GetQueueUrl", "sqs:GetQueueAttributes"],
                "Resource": "arn:aws:sqs:{{region}}:{{account_id}}:{{queue}}",
            }
        ),
    },
]


def policy_templates_seed() -> list[PolicyTemplate]:
    """The wizard's starter templates; existing ones (by name) are left as they are."""
    return [
        PolicyTemplate.objects.get_or_create(
            name=spec["name"],
            defaults={k: v for k, v in spec.items() if k != "name"},
        )[0]
        for spec in DEMO_TEMPLATES
    ]


def demo_roles_age(accounts: list[DemoAccount], *, days: int = 400) -> None:
    """Back-date the creation of the demo roles in the embedded AWS, which runs
    in this process: a role created a minute ago is younger than any right-sizing
    window, and the demo is to show unused permissions and a notice."""
    _assert_embedded()
    from moto.iam.models import iam_backends  # the demo extra: only the demo imports moto

    for demo in accounts:
        for backend in iam_backends[demo.account_id].values():
            for role in backend.get_roles():
                if role.name in demo.roles:
                    role.create_date = role.create_date - timedelta(days=days)


def approval_policies_seed(accounts: list[AwsAccount]) -> ApprovalPolicy:
    """The demo's approval policy: access to a ReadOnly role outside production,
    for up to 8 hours, is approved automatically (and recorded as such); every
    other request needs its accounts' reviewers."""
    policy = ApprovalPolicy.objects.filter(name=DEMO_APPROVAL_POLICY).first() or ApprovalPolicy(
        name=DEMO_APPROVAL_POLICY,
        order=10,
        role_arn_pattern="ReadOnly",
        request_kind=ApprovalPolicy.Kind.ACCESS,
        max_duration=timedelta(hours=8),
        automatic=True,
    )
    return approval_policy_save(
        policy=policy,
        actor=User.objects.get(username="admin"),
        accounts=[a for a in accounts if a.environment != "prod"],
        reviewer_groups=[],
    )


def rightsizing_policy_seed() -> None:
    """The demo's right-sizing policy: removal requests for review, after a notice."""
    RightsizingPolicy.objects.get_or_create(account=None, defaults={"mode": "request"})
