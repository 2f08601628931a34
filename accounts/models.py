from __future__ import annotations

import re
from datetime import timedelta

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models.functions import StrIndex, Substr, Upper

account_id_validator = RegexValidator(r"^\d{12}$", "An AWS account id is exactly 12 digits.")
role_name_validator = RegexValidator(
    r"^[\w+=,.@-]{1,64}$", "An IAM role name is 1-64 letters, digits or +=,.@_- characters."
)


class AwsAccount(models.Model):
    account_id = models.CharField(
        "account id", max_length=12, unique=True, validators=[account_id_validator]
    )
    name = models.CharField(max_length=64)
    aliases = models.JSONField(default=list, blank=True)
    environment = models.CharField(
        max_length=32, blank=True, help_text="A label such as prod, staging or dev."
    )
    spoke_role_name = models.CharField(
        max_length=64,
        blank=True,
        validators=[role_name_validator],
        help_text="Role iamportal assumes in this account. Empty: the IAMPORTAL_SPOKE_ROLE_NAME "
        "setting.",
    )
    external_id = models.CharField(
        max_length=1224,
        blank=True,
        help_text="ExternalId for the spoke role. Empty: the IAMPORTAL_SPOKE_EXTERNAL_ID setting.",
    )
    regions = models.JSONField(
        default=list,
        blank=True,
        help_text='Regions to read SQS and SNS from, e.g. ["us-east-1"]. Empty: IAMPORTAL_REGIONS.',
    )
    approvals_required = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(5)],
        help_text="Distinct reviewers who must approve a change in this account (e.g. 2 for prod).",
    )
    access_max_duration = models.DurationField(
        "longest access",
        default=timedelta(days=7),
        help_text="The longest an access request for one of its roles may last "
        "(e.g. 7 00:00:00 for a week; at most 90 days).",
    )
    access_permanent_allowed = models.BooleanField(
        "permanent access may be requested",
        default=False,
        help_text="Whether an access request for one of its roles may ask for no end.",
    )
    enabled = models.BooleanField(default=True)
    new_roles_require_boundary = models.BooleanField(
        default=False,
        help_text="Roles created through iamportal in this account must have a permissions "
        "boundary.",
    )
    latest_sync = models.ForeignKey(
        "SyncRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "account_id"]
        verbose_name = "AWS account"

    def __str__(self) -> str:
        return f"{self.name} ({self.account_id})"

    @property
    def spoke_role_arn(self) -> str:
        name = self.spoke_role_name or settings.IAMPORTAL_SPOKE_ROLE_NAME
        return f"arn:aws:iam::{self.account_id}:role/{name}"

    @property
    def sync_regions(self) -> list[str]:
        return list(self.regions or settings.IAMPORTAL_REGIONS)


class SyncRun(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        # The inventory was written, but some resources could not be read: their
        # previous rows were kept and marked (CloudResource.read_error).
        WARNINGS = "warnings", "Succeeded with warnings"
        FAILED = "failed"

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule"
        MANUAL = "manual"

    account = models.ForeignKey(AwsAccount, on_delete=models.CASCADE, related_name="sync_runs")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.SCHEDULE)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    queued_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent done.")
    stage = models.CharField(max_length=100, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    # The lease: the worker holding a running sync renews it as it makes
    # progress; once it has expired, the sweep re-enqueues the run and any
    # worker may claim it (the holder died, or its task was lost).
    lease_owner = models.CharField(max_length=200, blank=True, help_text="host:pid:claim")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(
        null=True, blank=True, help_text="When its task was last handed to the broker."
    )
    attempts = models.PositiveSmallIntegerField(
        default=0, help_text="How many times its task was handed to the broker."
    )

    class Meta:
        ordering = ["-queued_at", "-id"]
        indexes = [
            models.Index(fields=["account", "-queued_at"]),
            models.Index(fields=["account", "status", "finished_at"]),
            # The sweep's scan for unfinished runs.
            models.Index(
                fields=["status", "enqueued_at"],
                name="syncrun_unfinished",
                condition=models.Q(status__in=["queued", "running"]),
            ),
        ]

    def __str__(self) -> str:
        return f"sync of {self.account.account_id} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.RUNNING)

    @property
    def succeeded(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.WARNINGS)

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class InventoryItem(models.Model):
    """Columns every synced row has; `content_hash` lets a re-sync skip unchanged rows."""

    account = models.ForeignKey(AwsAccount, on_delete=models.CASCADE)
    arn = models.CharField("ARN", max_length=2048, unique=True)
    name = models.CharField(max_length=512)
    tags = models.JSONField(default=dict, blank=True)
    content_hash = models.CharField(max_length=64)
    synced_at = models.DateTimeField(help_text="When a sync last wrote this row.")

    class Meta:
        abstract = True
        ordering = ["name"]

    def __str__(self) -> str:
        return self.arn


class IamRole(InventoryItem):
    # Served by the (account, name) index below.
    account = models.ForeignKey(
        AwsAccount, on_delete=models.CASCADE, related_name="roles", db_index=False
    )
    role_id = models.CharField(max_length=128, blank=True)
    path = models.CharField(max_length=512, default="/")
    description = models.TextField(blank=True)
    trust_policy = models.JSONField(default=dict, blank=True)
    inline_policies = models.JSONField(
        default=dict, blank=True, help_text="Policy name to policy document."
    )
    managed_policies = models.JSONField(
        default=list, blank=True, help_text='[{"arn": ..., "name": ...}] attached to the role.'
    )
    permissions_boundary_arn = models.CharField(max_length=2048, blank=True)
    max_session_duration = models.PositiveIntegerField(default=3600)
    created_in_aws_at = models.DateTimeField(null=True, blank=True)
    # Day precision: AWS moves the last-used time of a role every time it is
    # assumed (the spoke role at every sync), which would defeat the content hash.
    last_used_on = models.DateField(null=True, blank=True)
    last_used_region = models.CharField(max_length=32, blank=True)
    refresh_requested_at = models.DateTimeField(null=True, blank=True)
    # The ARN in capitals, stored, so search compares without calling UPPER() on
    # every candidate row; PostgreSQL has a trigram index on it (migration 0005).
    search_key = models.GeneratedField(
        expression=Upper("arn"),
        output_field=models.CharField(max_length=2048),
        db_persist=True,
    )

    # What follows the account in the capitalised ARN (":ROLE/PATH/NAME"), which
    # roles in many accounts share. Search looks text up among these once each
    # (RoleArnTail) and then finds the roles through the index below, instead of
    # asking a trigram index over every role.
    search_tail = models.GeneratedField(
        expression=Substr(Upper("arn"), StrIndex(Upper("arn"), models.Value(":ROLE/"))),
        output_field=models.CharField(max_length=2048),
        db_persist=True,
    )

    class Meta(InventoryItem.Meta):
        verbose_name = "IAM role"
        indexes = [
            # A role list per account, in name order; on PostgreSQL search reads the
            # roles of an account from this index alone.
            models.Index(
                fields=["account", "name"],
                include=["search_key", "id"],
                name="iamrole_account_name",
            ),
            # The roles that share a tail, with what a search page sorts by, so
            # PostgreSQL answers from the index alone.
            models.Index(
                fields=["search_tail", "account"], include=["name", "id"], name="iamrole_tail"
            ),
        ]

    @property
    def refresh_pending(self) -> bool:
        return bool(self.refresh_requested_at and self.refresh_requested_at > self.synced_at)


class RoleArnTail(models.Model):
    """Each distinct `IamRole.search_tail`, once: the text role search looks up
    first. Kept by database triggers on the roles table (migration 0018), so no
    way of writing a role can leave it out; tails no role has any more are
    removed by `services.role_search_names_prune`. No unique constraint, on
    purpose: two syncs adding the same new tail never wait for each other, and
    the prune removes the rare duplicate."""

    search_key = models.CharField(max_length=2048)

    class Meta:
        indexes = [
            # Equality (the triggers' check) and prefixes (a pasted ARN).
            models.Index(
                fields=["search_key"], opclasses=["varchar_pattern_ops"], name="rolearntail_key"
            )
        ]

    def __str__(self) -> str:
        return self.search_key


class RoleArnHead(models.Model):
    """Each distinct start of a role ARN up to its account ("ARN:AWS:IAM::<id>")
    per account, kept as `RoleArnTail`: a search for an account id, or text
    across the account and the role, finds the accounts here."""

    account = models.ForeignKey(AwsAccount, on_delete=models.CASCADE, db_index=False)
    search_key = models.CharField(max_length=2048)

    class Meta:
        indexes = [models.Index(fields=["account", "search_key"], name="rolearnhead_key")]

    def __str__(self) -> str:
        return self.search_key


class RoleVersion(models.Model):
    """One version of one part of a role as a sync (or the refresh after an apply)
    saw it: written only when the part changed since its latest version, so the
    versions of a role are its history. `document` None: the part is absent (an
    inline policy deleted, no boundary, an empty trust policy).

    A role's versions outlive it: deleting the role (a sync that no longer finds
    it, the apply of a delete request) leaves `role` empty, and the account, ARN
    and name say whose versions they were."""

    class Part(models.TextChoices):
        INLINE = "inline", "Inline policy"
        MANAGED = "managed", "Attached managed policies"
        TRUST = "trust", "Trust policy"
        BOUNDARY = "boundary", "Permissions boundary"
        TAGS = "tags", "Tags"

    class Source(models.TextChoices):
        FIRST_SEEN = "first_seen", "First seen"
        REQUEST = "request", "iamportal request"
        OUTSIDE = "outside", "Changed outside iamportal"

    role = models.ForeignKey(
        IamRole, on_delete=models.SET_NULL, null=True, blank=True, related_name="versions"
    )
    account = models.ForeignKey(AwsAccount, on_delete=models.CASCADE, related_name="role_versions")
    role_arn = models.CharField(max_length=2048)
    role_name = models.CharField(max_length=128)
    part = models.CharField(max_length=16, choices=Part.choices)
    key = models.CharField(
        max_length=128, blank=True, help_text="The inline policy's name; empty for other parts."
    )
    document = models.JSONField(null=True, blank=True)
    recorded_at = models.DateTimeField()
    source = models.CharField(max_length=16, choices=Source.choices)
    # A number rather than a foreign key: the inventory does not depend on requests.
    request_number = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-recorded_at", "-id"]
        indexes = [
            models.Index(fields=["role", "part", "key", "-id"]),
            models.Index(fields=["account", "role_name", "-id"]),
        ]

    def __str__(self) -> str:
        return f"{self.role_name} {self.label} at {self.recorded_at:%Y-%m-%d %H:%M}"

    @property
    def label(self) -> str:
        if self.part == self.Part.INLINE:
            return f"inline policy {self.key}"
        return str(self.Part(self.part).label).lower().replace("iam", "IAM")

    @property
    def source_text(self) -> str:
        if self.source == self.Source.REQUEST:
            return f"iamportal request #{self.request_number}"
        return str(self.Source(self.source).label)


class ManagedPolicy(InventoryItem):
    """A customer-managed policy of an account (AWS-managed ones are referenced by ARN)."""

    account = models.ForeignKey(
        AwsAccount, on_delete=models.CASCADE, related_name="managed_policies"
    )
    path = models.CharField(max_length=512, default="/")
    description = models.TextField(blank=True)
    default_version_id = models.CharField(max_length=16, blank=True)
    document = models.JSONField(default=dict, blank=True)
    attachment_count = models.PositiveIntegerField(default=0)

    class Meta(InventoryItem.Meta):
        verbose_name_plural = "managed policies"


class CloudResource(InventoryItem):
    """A resource of any type: the three iamportal reads directly when AWS Config
    does not hold them (their short type names), or any type AWS Config records
    (its own type name, e.g. AWS::DynamoDB::Table)."""

    class Type(models.TextChoices):
        S3 = "s3", "S3 bucket"
        SQS = "sqs", "SQS queue"
        SNS = "sns", "SNS topic"

    class Source(models.TextChoices):
        DIRECT = "direct", "Read directly"
        CONFIG = "config", "AWS Config"

    # Served by the (account, type, name) index below: one index fewer to keep
    # up for the thousands of rows a sync writes.
    account = models.ForeignKey(
        AwsAccount, on_delete=models.CASCADE, related_name="resources", db_index=False
    )
    # Not limited to the choices: AWS Config types are stored as Config names them.
    type = models.CharField(max_length=128, choices=Type.choices)
    region = models.CharField(max_length=32, blank=True)
    policy = models.JSONField(null=True, blank=True, help_text="The resource policy, if any.")
    attributes = models.JSONField(default=dict, blank=True)
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.DIRECT)
    resource_id = models.CharField(
        max_length=768, blank=True, help_text="AWS Config's resource id (Config resources only)."
    )
    summary = models.JSONField(
        default=dict,
        blank=True,
        help_text="A few top-level fields of AWS Config's configuration item, bounded in size.",
    )
    changed_in_aws_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When AWS Config last recorded a change (configurationItemCaptureTime).",
    )
    # Set when the latest sync listed the resource but could not read its policy,
    # tags or attributes: the row keeps what an earlier sync read (or only the
    # name and ARN for a resource never read), since a resource that could not
    # be read is not a resource that is gone.
    read_error = models.TextField(blank=True)
    read_error_at = models.DateTimeField(null=True, blank=True)

    class Meta(InventoryItem.Meta):
        indexes = [
            models.Index(fields=["account", "type", "name"]),
            # The resource list filtered by type across every account.
            models.Index(fields=["type", "name"]),
        ]

    @property
    def summary_fields(self) -> list[tuple[str, str]]:
        """AWS Config's summary as (field, value) pairs to show."""
        return [(str(key), str(value)) for key, value in sorted((self.summary or {}).items())]


class IamUser(InventoryItem):
    account = models.ForeignKey(AwsAccount, on_delete=models.CASCADE, related_name="iam_users")
    user_id = models.CharField(max_length=128, blank=True)
    path = models.CharField(max_length=512, default="/")
    inline_policies = models.JSONField(
        default=dict, blank=True, help_text="Policy name to policy document."
    )
    managed_policies = models.JSONField(
        default=list, blank=True, help_text='[{"arn": ..., "name": ...}] attached to the user.'
    )
    groups = models.JSONField(default=list, blank=True, help_text="Names of the user's groups.")
    permissions_boundary_arn = models.CharField(max_length=2048, blank=True)
    created_in_aws_at = models.DateTimeField(null=True, blank=True)
    # Day precision, like a role's last use: a finer time would change the
    # content hash (and rewrite the row) at every sync of an active user.
    password_last_used_on = models.DateField(null=True, blank=True)
    access_keys = models.JSONField(
        default=list,
        blank=True,
        help_text='[{"id", "status", "created", "last_used_on", "last_used_service", '
        '"last_used_region"}]',
    )
    # Set when the latest sync could not read the user's access keys: the row
    # keeps the keys an earlier sync read.
    access_keys_error = models.TextField(blank=True)

    class Meta(InventoryItem.Meta):
        verbose_name = "IAM user"
        indexes = [models.Index(fields=["account", "name"])]


class IamGroup(InventoryItem):
    account = models.ForeignKey(AwsAccount, on_delete=models.CASCADE, related_name="iam_groups")
    group_id = models.CharField(max_length=128, blank=True)
    path = models.CharField(max_length=512, default="/")
    inline_policies = models.JSONField(
        default=dict, blank=True, help_text="Policy name to policy document."
    )
    managed_policies = models.JSONField(
        default=list, blank=True, help_text='[{"arn": ..., "name": ...}] attached to the group.'
    )
    members = models.JSONField(default=list, blank=True, help_text="Names of the member users.")
    created_in_aws_at = models.DateTimeField(null=True, blank=True)

    class Meta(InventoryItem.Meta):
        verbose_name = "IAM group"
        indexes = [models.Index(fields=["account", "name"])]


class Database(InventoryItem):
    """An RDS instance or cluster, or a Redshift cluster, in one region of an account.

    A model of its own rather than a CloudResource type: databases have no
    resource policy, and what people look them up for (engine, endpoint, port,
    whether IAM authentication is on, the resource id an `rds-db:connect`
    grant names) deserves columns."""

    class Type(models.TextChoices):
        RDS_INSTANCE = "rds-instance", "RDS instance"
        RDS_CLUSTER = "rds-cluster", "RDS cluster"
        REDSHIFT = "redshift", "Redshift cluster"

    account = models.ForeignKey(AwsAccount, on_delete=models.CASCADE, related_name="databases")
    type = models.CharField(max_length=16, choices=Type.choices)
    region = models.CharField(max_length=32)
    engine = models.CharField(max_length=64, blank=True)
    engine_version = models.CharField(max_length=64, blank=True)
    endpoint = models.CharField(max_length=512, blank=True)
    port = models.PositiveIntegerField(null=True, blank=True)
    # None: the engine has no IAM database authentication to speak of (Redshift
    # signs in with GetClusterCredentials instead).
    iam_auth = models.BooleanField(
        "IAM database authentication", null=True, blank=True, default=None
    )
    resource_id = models.CharField(
        max_length=128, blank=True, help_text="DbiResourceId or DbClusterResourceId."
    )
    status = models.CharField(max_length=64, blank=True)
    cluster = models.CharField(
        max_length=256, blank=True, help_text="The cluster an instance belongs to."
    )

    class Meta(InventoryItem.Meta):
        indexes = [models.Index(fields=["account", "type", "name"])]


# --- the organisation, read from its management (or delegated) account ------------


class OrgNode(models.Model):
    """A root or an organisational unit of the AWS Organization."""

    class Kind(models.TextChoices):
        ROOT = "root"
        OU = "ou", "Organisational unit"

    node_id = models.CharField(max_length=64, unique=True)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    arn = models.CharField("ARN", max_length=2048)
    name = models.CharField(max_length=128)
    parent_id = models.CharField(max_length=64, blank=True)
    path = models.CharField(
        max_length=2048, help_text="Names from the root down, e.g. Root / Workloads / Prod."
    )
    content_hash = models.CharField(max_length=64)
    synced_at = models.DateTimeField()

    class Meta:
        ordering = ["path"]
        verbose_name = "organisation unit"

    def __str__(self) -> str:
        return self.path


class OrgAccount(models.Model):
    """Where an account of the organisation sits (onboarded or not)."""

    account_id = models.CharField(max_length=12, unique=True)
    name = models.CharField(max_length=128)
    email = models.CharField(max_length=320, blank=True)
    status = models.CharField(max_length=32, blank=True)
    parent_id = models.CharField(max_length=64)
    content_hash = models.CharField(max_length=64)
    synced_at = models.DateTimeField()

    class Meta:
        ordering = ["name"]
        verbose_name = "organisation account"

    def __str__(self) -> str:
        return f"{self.name} ({self.account_id})"


class ServiceControlPolicy(models.Model):
    policy_id = models.CharField(max_length=64, unique=True)
    arn = models.CharField("ARN", max_length=2048)
    name = models.CharField(max_length=128)
    description = models.TextField(blank=True)
    aws_managed = models.BooleanField(default=False)
    document = models.JSONField(default=dict, blank=True)
    targets = models.JSONField(
        default=list, blank=True, help_text="Ids of the roots, OUs and accounts it is attached to."
    )
    content_hash = models.CharField(max_length=64)
    synced_at = models.DateTimeField()

    class Meta:
        ordering = ["name"]
        verbose_name = "service control policy"
        verbose_name_plural = "service control policies"

    def __str__(self) -> str:
        return self.name


class DeniedCall(models.Model):
    """Calls AWS refused to a role's sessions, grouped by who (the session name),
    what (the IAM action) and on what (the resource ARN, or "*"): read from the
    organisation's CloudTrail events, so the role page can suggest the grant."""

    role = models.ForeignKey(IamRole, on_delete=models.CASCADE, related_name="denied_calls")
    session_name = models.CharField(max_length=64)
    action = models.CharField(max_length=128)
    resource = models.CharField(max_length=2048)
    key = models.CharField(max_length=64, help_text="SHA-256 of session, action and resource.")
    error_code = models.CharField(max_length=64)
    count = models.PositiveIntegerField(default=0)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()

    class Meta:
        ordering = ["-last_seen", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["role", "key"], name="denied_call_unique_group")
        ]
        indexes = [
            models.Index(fields=["role", "-last_seen"]),
            models.Index(fields=["session_name", "-last_seen"]),
        ]

    def __str__(self) -> str:
        return f"{self.action} on {self.resource} by {self.session_name} ({self.count}x)"


class DeniedEventSeen(models.Model):
    """A CloudTrail event already counted: a message the queue delivers again
    (a worker died before deleting it) is not counted twice."""

    event_id = models.CharField(max_length=128, unique=True)
    seen_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return self.event_id


# --- one table over every kind of item, for the Policies page and search ------------


class InventoryEntry(models.Model):
    """One row per role, IAM user, managed policy, resource and database, with
    what the Policies page filters and sorts on. Derived from those tables by
    `inventory_entries_refresh` at the end of every sync and role refresh (rows
    whose source is unchanged are not rewritten), so that one indexed table
    answers a filtered page of any mix of kinds."""

    class Kind(models.TextChoices):
        ROLE = "role", "IAM role"
        USER = "user", "IAM user"
        POLICY = "policy", "Managed policy"
        RESOURCE = "resource", "Resource"
        DATABASE = "database", "Database"

    # Served by the inventoryentry_account index below.
    account = models.ForeignKey(
        AwsAccount, on_delete=models.CASCADE, related_name="inventory_entries", db_index=False
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # The source row's primary key in the table `kind` names.
    object_id = models.PositiveBigIntegerField()
    # "role", "user", "policy", or the resource's or database's own type ("s3", "rds-instance").
    type = models.CharField(max_length=64)
    arn = models.CharField("ARN", max_length=2048)
    name = models.CharField(max_length=512)
    region = models.CharField(max_length=32, blank=True)
    tags = models.JSONField(default=dict, blank=True)
    has_resource_policy = models.BooleanField(default=False)
    public = models.BooleanField(
        default=False,
        help_text="Its resource policy (a role's trust policy) allows any principal without a "
        "condition that limits it.",
    )
    changed_at = models.DateTimeField(help_text="When a sync last saw the item change.")
    # The ARN in capitals: text search compares without UPPER() on every row, and
    # PostgreSQL serves it from a trigram index (migration 0010).
    search_key = models.CharField(max_length=2048)

    class Meta:
        ordering = ["name", "id"]
        verbose_name = "inventory entry"
        verbose_name_plural = "inventory entries"
        constraints = [
            models.UniqueConstraint(fields=["kind", "object_id"], name="inventoryentry_source")
        ]
        indexes = [
            # Keyset pagination: every filter walks one of these in page order.
            models.Index(fields=["name", "id"], name="inventoryentry_page"),
            models.Index(fields=["account", "name", "id"], name="inventoryentry_account"),
            models.Index(fields=["type", "name", "id"], name="inventoryentry_type"),
            models.Index(fields=["changed_at"], name="inventoryentry_changed"),
            models.Index(
                fields=["name", "id"],
                name="inventoryentry_public",
                condition=models.Q(public=True),
            ),
            models.Index(
                fields=["name", "id"],
                name="inventoryentry_has_policy",
                condition=models.Q(has_resource_policy=True),
            ),
        ]

    def __str__(self) -> str:
        return self.arn

    @property
    def type_label(self) -> str:
        return entry_type_label(self.type)


# Where an AWS Config type name's words meet: "SecurityGroup", "DBInstance".
_WORD_START = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def config_type_label(config_type: str) -> str:
    """A readable label for an AWS Config resource type: "AWS::DynamoDB::Table"
    is "DynamoDB table", "AWS::EC2::SecurityGroup" "EC2 security group"."""
    parts = config_type.split("::")
    if len(parts) != 3 or not parts[1] or not parts[2]:
        return config_type
    words = [
        word if word.isupper() or len(word) == 1 else word.lower()
        for word in _WORD_START.split(parts[2])
    ]
    return " ".join([parts[1], *words])


def entry_type_label(type_: str) -> str:
    """The label of a Policies page entry's type: the built-in types' own, an
    AWS Config type's readable form."""
    labels = {
        "role": "IAM role",
        "user": "IAM user",
        "policy": "Managed policy",
        **dict(CloudResource.Type.choices),
        **dict(Database.Type.choices),
    }
    if type_ in labels:
        return str(labels[type_])
    return config_type_label(type_)
