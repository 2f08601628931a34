"""What roles use (IAM Access Advisor), the right-sizing policy, and the notices
of removals it plans."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from accounts.models import AwsAccount, IamRole


class AdvisorRun(models.Model):
    """One pass of Access Advisor over every role of an account: a row with a
    lease, as a sync is, so a sweep finishes it when its worker dies."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        # Written, but some roles could not be read: their data is stale.
        WARNINGS = "warnings", "Succeeded with warnings"
        FAILED = "failed"

    account = models.ForeignKey(AwsAccount, on_delete=models.CASCADE, related_name="advisor_runs")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    queued_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    failed_roles = models.JSONField(
        default=list, blank=True, help_text="ARNs of the roles this pass could not read."
    )
    error = models.TextField(blank=True)
    lease_owner = models.CharField(max_length=200, blank=True, help_text="host:pid:claim")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["-queued_at", "-id"]
        verbose_name = "Access Advisor run"
        indexes = [
            models.Index(fields=["account", "status", "-finished_at"]),
            models.Index(
                fields=["status", "enqueued_at"],
                name="advisorrun_unfinished",
                condition=models.Q(status__in=["queued", "running"]),
            ),
        ]

    def __str__(self) -> str:
        return f"Access Advisor of {self.account.account_id} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.RUNNING)


class ServiceUsage(models.Model):
    """When a role last used one service its policies grant (None: never, as far
    as Access Advisor tracks), and each tracked action of it. Rewritten only
    when what AWS reports changes."""

    role = models.ForeignKey(IamRole, on_delete=models.CASCADE, related_name="service_usage")
    namespace = models.CharField(max_length=64, help_text="The service prefix, e.g. s3.")
    service_name = models.CharField(max_length=256, blank=True)
    last_accessed_at = models.DateTimeField(null=True, blank=True)
    last_entity = models.CharField(max_length=2048, blank=True)
    last_region = models.CharField(max_length=32, blank=True)
    actions = models.JSONField(
        default=list,
        blank=True,
        help_text='[{"action", "last_accessed_at", "entity", "region"}] where AWS tracks actions.',
    )
    content_hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["namespace"]
        constraints = [
            models.UniqueConstraint(fields=["role", "namespace"], name="serviceusage_role_service")
        ]
        verbose_name_plural = "service usage"

    def __str__(self) -> str:
        return f"{self.role.name} {self.namespace}"


class RightsizingPolicy(models.Model):
    """How unused permissions are treated. The row without an account is the
    default; a row for an account overrides it there."""

    class Mode(models.TextChoices):
        REPORT = "report", "Report only"
        REQUEST = "request", "File removal requests for review"
        AUTO = "auto", "Remove after the notice (approved automatically)"

    account = models.OneToOneField(
        AwsAccount,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="rightsizing_policy",
        help_text="Empty: the default for every account without a policy of its own.",
    )
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.REPORT)
    window_days = models.PositiveSmallIntegerField(
        default=90,
        validators=[MinValueValidator(1), MaxValueValidator(400)],
        help_text="A permission unused this long is unused. (Access Advisor looks back 400 days.)",
    )
    notice_days = models.PositiveSmallIntegerField(
        default=14,
        validators=[MinValueValidator(0), MaxValueValidator(90)],
        help_text="Days between the notice and the removal request.",
    )
    grant_grace_days = models.PositiveSmallIntegerField(
        default=14,
        validators=[MaxValueValidator(400)],
        help_text="Permissions granted less than this long ago are never removed.",
    )
    exempt_tag = models.CharField(
        max_length=300,
        default="iamportal-rightsizing=off",
        blank=True,
        help_text="key=value a role carries to be left alone (keys and values ignore case).",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "right-sizing policy"
        verbose_name_plural = "right-sizing policies"
        constraints = [
            models.UniqueConstraint(
                fields=["account"],
                condition=models.Q(account=None),
                name="rightsizing_one_default",
            ),
        ]

    def __str__(self) -> str:
        return f"right-sizing {'of ' + str(self.account) if self.account_id else '(default)'}"


class RightsizingPolicyChange(models.Model):
    """The audit of right-sizing policies: who changed one, when, before and after."""

    policy = models.ForeignKey(
        RightsizingPolicy, null=True, blank=True, on_delete=models.SET_NULL, related_name="history"
    )
    label = models.CharField(max_length=200)
    action = models.CharField(max_length=8)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "right-sizing policy change"

    def __str__(self) -> str:
        return f"{self.label} {self.action}"


class RemovalNotice(models.Model):
    """The notice that a role's unused permissions will be removed: told to the
    people who use and own the role, shown on its page, and turned into a
    removal request when it runs out, unless use or an exemption cancels it."""

    class Status(models.TextChoices):
        PENDING = "pending"
        CANCELLED = "cancelled"
        FILED = "filed", "Request filed"

    role = models.ForeignKey(IamRole, on_delete=models.CASCADE, related_name="removal_notices")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    removals = models.JSONField(
        help_text='[{"kind": "inline"|"managed", "key": name or ARN, "services", "actions"}]'
    )
    created_at = models.DateTimeField()
    remove_after = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    request_number = models.PositiveIntegerField(null=True, blank=True)
    # The email of the notice: a row with a lease, sent once.
    email_sent_at = models.DateTimeField(null=True, blank=True)
    email_lease_expires_at = models.DateTimeField(null=True, blank=True)
    emails_sent = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["role"],
                condition=models.Q(status="pending"),
                name="removalnotice_one_pending",
            )
        ]

    def __str__(self) -> str:
        return f"removal notice for {self.role.name} ({self.status})"

    @property
    def services(self) -> list[str]:
        return sorted({s for item in self.removals for s in item.get("services", [])})
