"""The curated permission map: common services in plain language, as data.

Each service says how its resource is named (the ARN pattern the wizard
accepts and the canonical form it is rebuilt into) and which access choices
it offers. A choice lists the exact IAM actions it grants, the resource shape
they apply to (an S3 bucket ARN is not an object ARN) and whether it can
destroy data, in which case the requester must tick it explicitly.

Templates are `str.format` strings over the pieces captured by the service's
ARN pattern, the intent's options (missing ones are empty) and `{arn}`, the
canonical resource ARN.

Everything the map puts into a policy is bounded by the patterns below: no
wildcard, no `${` (IAM would read it as a policy variable), no whitespace.
"""

from __future__ import annotations

from dataclasses import dataclass

from requests_app.policy.limits import PARTITION_PATTERN

REGION_PATTERN = r"[a-z]{2}(?:-[a-z]+)+-\d{1,2}"
ACCOUNT_PATTERN = r"\d{12}"

_P = rf"(?P<partition>{PARTITION_PATTERN})"
_R = rf"(?P<region>{REGION_PATTERN})"
_A = rf"(?P<account>{ACCOUNT_PATTERN})"

EMAIL_PATTERN = r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+"
DOMAIN_PATTERN = r"[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+"


@dataclass(frozen=True)
class Field:
    """A piece of a resource ARN the wizard asks for when there is no ARN to pick."""

    name: str
    label: str
    pattern: str
    example: str
    default: str = ""


@dataclass(frozen=True)
class Option:
    """A refinement of the grant (a key prefix, a sender address)."""

    name: str
    label: str
    pattern: str
    max_length: int
    example: str
    required: bool = False
    help: str = ""


@dataclass(frozen=True)
class ConditionSpec:
    """One condition added to a choice's statement when `option` is given
    (always, when `option` is empty)."""

    operator: str
    key: str
    value: str
    option: str = ""


@dataclass(frozen=True)
class ArnShape:
    """The resource ARNs a choice applies to, built from the canonical ARN."""

    key: str
    label: str
    resources: tuple[str, ...]


@dataclass(frozen=True)
class Choice:
    key: str
    label: str
    actions: tuple[str, ...]
    shape: str
    destructive: bool = False
    conditions: tuple[ConditionSpec, ...] = ()


@dataclass(frozen=True)
class Service:
    key: str
    """The IAM service prefix, as the intent names it."""
    name: str
    resource_label: str
    arn_example: str
    arn_pattern: str
    """Matches the whole ARN; named groups are the pieces templates use."""
    arn_template: str
    """Rebuilds the canonical ARN from the pieces."""
    sid_name: str
    """Template for the readable part of statement ids."""
    shapes: tuple[ArnShape, ...]
    choices: tuple[Choice, ...]
    options: tuple[Option, ...] = ()
    fields: tuple[Field, ...] = ()
    """Pieces that can stand in for the ARN (for resources the inventory does not hold)."""

    @property
    def arn_service(self) -> str:
        """The service part of the resource ARN (sts grants on iam role ARNs)."""
        return self.arn_example.split(":")[2]

    def choice(self, key: str) -> Choice | None:
        return next((choice for choice in self.choices if choice.key == key), None)

    def shape(self, key: str) -> ArnShape:
        return next(shape for shape in self.shapes if shape.key == key)

    def option(self, name: str) -> Option | None:
        return next((option for option in self.options if option.name == name), None)


S3_PREFIX = Option(
    name="prefix",
    label="Key prefix",
    # Wildcards and `$` would change what the policy matches; whitespace and
    # control characters have no business in a reviewed policy.
    pattern=r"[^\s*?$\x00-\x1f\x7f]+",
    max_length=1024,
    example="reports/2026/",
    help="Only objects whose key starts with this prefix. Empty means the whole bucket.",
)

S3 = Service(
    key="s3",
    name="Amazon S3",
    resource_label="bucket",
    arn_example="arn:aws:s3:::my-bucket",
    arn_pattern=rf"arn:{_P}:s3:::(?P<bucket>[a-z0-9][a-z0-9.-]{{1,61}}[a-z0-9])",
    arn_template="arn:{partition}:s3:::{bucket}",
    sid_name="{bucket}-{prefix}",
    shapes=(
        ArnShape("bucket", "the bucket", ("{arn}",)),
        ArnShape("objects", "objects in the bucket", ("{arn}/{prefix}*",)),
    ),
    choices=(
        Choice(
            key="list",
            label="List objects",
            actions=("s3:ListBucket",),
            shape="bucket",
            conditions=(ConditionSpec("StringLike", "s3:prefix", "{prefix}*", option="prefix"),),
        ),
        Choice(
            key="read",
            label="Read objects",
            actions=(
                "s3:GetObject",
                "s3:GetObjectAttributes",
                "s3:GetObjectVersion",
                "s3:GetObjectVersionAttributes",
            ),
            shape="objects",
        ),
        Choice(
            key="write",
            label="Write objects",
            # Multipart uploads are how SDKs write large objects.
            actions=("s3:AbortMultipartUpload", "s3:ListMultipartUploadParts", "s3:PutObject"),
            shape="objects",
        ),
        Choice(
            key="delete",
            label="Delete objects",
            actions=("s3:DeleteObject", "s3:DeleteObjectVersion"),
            shape="objects",
            destructive=True,
        ),
    ),
    options=(S3_PREFIX,),
)

_QUEUE = r"(?P<queue>[A-Za-z0-9_-]{1,75}\.fifo|[A-Za-z0-9_-]{1,80})"
SQS = Service(
    key="sqs",
    name="Amazon SQS",
    resource_label="queue",
    arn_example="arn:aws:sqs:us-east-1:123456789012:my-queue",
    arn_pattern=rf"arn:{_P}:sqs:{_R}:{_A}:{_QUEUE}",
    arn_template="arn:{partition}:sqs:{region}:{account}:{queue}",
    sid_name="{queue}",
    shapes=(ArnShape("queue", "the queue", ("{arn}",)),),
    choices=(
        Choice(
            key="send",
            label="Send messages",
            actions=("sqs:GetQueueUrl", "sqs:SendMessage"),
            shape="queue",
        ),
        Choice(
            key="receive",
            # Deleting a received message is how a consumer acknowledges it;
            # it cannot remove messages nobody received (PurgeQueue is not offered).
            label="Receive and delete messages",
            actions=(
                "sqs:ChangeMessageVisibility",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "sqs:GetQueueUrl",
                "sqs:ReceiveMessage",
            ),
            shape="queue",
        ),
        Choice(
            key="read-attributes",
            label="Read queue attributes",
            actions=("sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:ListQueueTags"),
            shape="queue",
        ),
    ),
)

_TOPIC = r"(?P<topic>[A-Za-z0-9_-]{1,251}\.fifo|[A-Za-z0-9_-]{1,256})"
SNS = Service(
    key="sns",
    name="Amazon SNS",
    resource_label="topic",
    arn_example="arn:aws:sns:us-east-1:123456789012:my-topic",
    arn_pattern=rf"arn:{_P}:sns:{_R}:{_A}:{_TOPIC}",
    arn_template="arn:{partition}:sns:{region}:{account}:{topic}",
    sid_name="{topic}",
    shapes=(ArnShape("topic", "the topic", ("{arn}",)),),
    choices=(
        Choice(key="publish", label="Publish messages", actions=("sns:Publish",), shape="topic"),
        Choice(
            key="subscribe",
            # sns:Unsubscribe cannot be limited to a topic (IAM only accepts
            # "*" for it), so it is never offered.
            label="Subscribe to the topic",
            actions=("sns:Subscribe",),
            shape="topic",
        ),
        Choice(
            key="read-attributes",
            label="Read topic attributes and subscriptions",
            actions=("sns:GetTopicAttributes", "sns:ListSubscriptionsByTopic"),
            shape="topic",
        ),
    ),
)

_RESOURCE_ID = r"(?:db|cluster)-[A-Z0-9]{1,64}"
_DB_USER = r"[A-Za-z0-9_.@-]{1,63}"
RDS_DB = Service(
    key="rds-db",
    name="Amazon RDS IAM database authentication",
    resource_label="database user",
    arn_example="arn:aws:rds-db:us-east-1:123456789012:dbuser:db-ABCDEFGHIJKLMNOP0123456789/app_user",
    arn_pattern=(
        rf"arn:{_P}:rds-db:{_R}:{_A}:dbuser:(?P<resource_id>{_RESOURCE_ID})/(?P<db_user>{_DB_USER})"
    ),
    arn_template="arn:{partition}:rds-db:{region}:{account}:dbuser:{resource_id}/{db_user}",
    sid_name="{resource_id}-{db_user}",
    shapes=(ArnShape("db-user", "the database user", ("{arn}",)),),
    choices=(
        Choice(
            key="connect",
            label="Connect as the database user",
            actions=("rds-db:connect",),
            shape="db-user",
        ),
    ),
    fields=(
        Field("region", "Region", REGION_PATTERN, "us-east-1"),
        Field("account", "Account ID", ACCOUNT_PATTERN, "123456789012"),
        Field(
            "resource_id",
            "Instance or cluster resource ID",
            _RESOURCE_ID,
            "db-ABCDEFGHIJKLMNOP0123456789",
        ),
        Field("db_user", "Database user name", _DB_USER, "app_user"),
        Field("partition", "Partition", PARTITION_PATTERN, "aws", default="aws"),
    ),
)

_ROLE = r"(?P<role>(?:[A-Za-z0-9+=,.@_-]{1,64}/){0,16}[A-Za-z0-9+=,.@_-]{1,64})"
STS = Service(
    key="sts",
    name="AWS STS",
    resource_label="role",
    arn_example="arn:aws:iam::123456789012:role/my-role",
    arn_pattern=rf"arn:{_P}:iam::{_A}:role/{_ROLE}",
    arn_template="arn:{partition}:iam::{account}:role/{role}",
    sid_name="{role}",
    shapes=(ArnShape("role", "the role", ("{arn}",)),),
    choices=(
        Choice(
            key="assume-role", label="Assume the role", actions=("sts:AssumeRole",), shape="role"
        ),
    ),
)

SES = Service(
    key="ses",
    name="Amazon SES",
    resource_label="verified identity (domain or address)",
    arn_example="arn:aws:ses:us-east-1:123456789012:identity/example.com",
    arn_pattern=(
        rf"arn:{_P}:ses:{_R}:{_A}:identity/(?P<identity>{EMAIL_PATTERN}|{DOMAIN_PATTERN})"
    ),
    arn_template="arn:{partition}:ses:{region}:{account}:identity/{identity}",
    sid_name="{from_address}",
    shapes=(ArnShape("identity", "the identity", ("{arn}",)),),
    choices=(
        Choice(
            key="send",
            label="Send email from the address",
            actions=("ses:SendEmail", "ses:SendRawEmail"),
            shape="identity",
            conditions=(
                ConditionSpec("StringEquals", "ses:FromAddress", "{from_address}", "from_address"),
            ),
        ),
    ),
    options=(
        Option(
            name="from_address",
            label="From address",
            pattern=EMAIL_PATTERN,
            max_length=254,
            example="noreply@example.com",
            required=True,
            help="The only sender address allowed; it must belong to the identity.",
        ),
    ),
)

_KEY_ID = (
    r"(?P<key_id>mrk-[0-9a-f]{32}"
    r"|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
)
KMS = Service(
    key="kms",
    name="AWS KMS",
    resource_label="key",
    arn_example="arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    arn_pattern=rf"arn:{_P}:kms:{_R}:{_A}:key/{_KEY_ID}",
    arn_template="arn:{partition}:kms:{region}:{account}:key/{key_id}",
    sid_name="{key_id}",
    shapes=(ArnShape("key", "the key", ("{arn}",)),),
    choices=(
        Choice(
            key="encrypt",
            label="Encrypt with the key",
            actions=(
                "kms:DescribeKey",
                "kms:Encrypt",
                "kms:GenerateDataKey",
                "kms:GenerateDataKeyWithoutPlaintext",
            ),
            shape="key",
        ),
        Choice(
            key="decrypt",
            label="Decrypt with the key",
            actions=("kms:Decrypt", "kms:DescribeKey"),
            shape="key",
        ),
    ),
)

SECRETS_MANAGER = Service(
    key="secretsmanager",
    name="AWS Secrets Manager",
    resource_label="secret",
    arn_example="arn:aws:secretsmanager:us-east-1:123456789012:secret:my-secret-AbCdEf",
    arn_pattern=rf"arn:{_P}:secretsmanager:{_R}:{_A}:secret:(?P<secret>[A-Za-z0-9/_+=.@-]{{1,512}})",
    arn_template="arn:{partition}:secretsmanager:{region}:{account}:secret:{secret}",
    sid_name="{secret}",
    shapes=(ArnShape("secret", "the secret", ("{arn}",)),),
    choices=(
        Choice(
            key="read",
            label="Read the secret value",
            actions=("secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"),
            shape="secret",
        ),
    ),
)

DYNAMODB = Service(
    key="dynamodb",
    name="Amazon DynamoDB",
    resource_label="table",
    arn_example="arn:aws:dynamodb:us-east-1:123456789012:table/my-table",
    arn_pattern=rf"arn:{_P}:dynamodb:{_R}:{_A}:table/(?P<table>[A-Za-z0-9_.-]{{3,255}})",
    arn_template="arn:{partition}:dynamodb:{region}:{account}:table/{table}",
    sid_name="{table}",
    shapes=(
        ArnShape("table", "the table", ("{arn}",)),
        ArnShape("table-and-indexes", "the table and its indexes", ("{arn}", "{arn}/index/*")),
    ),
    choices=(
        Choice(
            key="read",
            label="Read items",
            actions=(
                "dynamodb:BatchGetItem",
                "dynamodb:ConditionCheckItem",
                "dynamodb:DescribeTable",
                "dynamodb:GetItem",
                "dynamodb:Query",
                "dynamodb:Scan",
            ),
            shape="table-and-indexes",
        ),
        Choice(
            key="write",
            label="Create and update items",
            actions=("dynamodb:PutItem", "dynamodb:UpdateItem"),
            shape="table",
        ),
        Choice(
            key="batch-write",
            # One BatchWriteItem call can put and delete items alike: IAM has
            # no way to allow only the puts.
            label="Write items in batches (a batch can also delete items)",
            actions=("dynamodb:BatchWriteItem",),
            shape="table",
            destructive=True,
        ),
        Choice(
            key="delete",
            label="Delete items",
            actions=("dynamodb:DeleteItem",),
            shape="table",
            destructive=True,
        ),
    ),
)

LOGS = Service(
    key="logs",
    name="Amazon CloudWatch Logs",
    resource_label="log group",
    arn_example="arn:aws:logs:us-east-1:123456789012:log-group:my-log-group",
    # The console and the API show log group ARNs with a trailing ":*".
    arn_pattern=(
        rf"arn:{_P}:logs:{_R}:{_A}:log-group:(?P<log_group>[A-Za-z0-9_./#-]{{1,512}})(?::\*)?"
    ),
    arn_template="arn:{partition}:logs:{region}:{account}:log-group:{log_group}",
    sid_name="{log_group}",
    shapes=(
        ArnShape(
            "log-group-and-streams",
            "the log group and its streams",
            ("{arn}", "{arn}:log-stream:*"),
        ),
    ),
    choices=(
        Choice(
            key="write",
            label="Write log events",
            actions=("logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"),
            shape="log-group-and-streams",
        ),
        Choice(
            key="read",
            label="Read log events",
            actions=("logs:DescribeLogStreams", "logs:FilterLogEvents", "logs:GetLogEvents"),
            shape="log-group-and-streams",
        ),
    ),
)

SERVICES: tuple[Service, ...] = (
    S3,
    SQS,
    SNS,
    RDS_DB,
    STS,
    SES,
    KMS,
    SECRETS_MANAGER,
    DYNAMODB,
    LOGS,
)

_BY_KEY = {service.key: service for service in SERVICES}


def service_get(key: str) -> Service | None:
    """The curated service named `key`, or None for services outside the map."""
    return _BY_KEY.get(key)
