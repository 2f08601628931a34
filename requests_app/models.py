from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class PolicyTemplate(models.Model):
    """A reusable policy an admin prepared, with {{placeholders}} the requester fills in."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    parameters = models.JSONField(
        default=list,
        blank=True,
        help_text='Placeholders the requester fills in: [{"name": "bucket", "label": "Bucket '
        'name", "help": "..."}]. Use them in the document as {{bucket}}.',
    )
    document = models.TextField(
        help_text="The policy document (JSON) with {{placeholders}} where values go."
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class PolicyRequest(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        # Claimed by one apply task; no other task touches the request meanwhile.
        APPLYING = "applying"
        REJECTED = "rejected"
        CANCELLED = "cancelled"
        APPLIED = "applied"
        FAILED = "failed"
        # Claimed by the expiry sweep while it removes temporary access.
        EXPIRING = "expiring"
        EXPIRED = "expired"

    class Kind(models.TextChoices):
        PERMISSION = "permission", "Permission change"
        ACCESS = "access", "Access to a role"

    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.PERMISSION)
    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="policy_requests"
    )
    role = models.ForeignKey(
        "accounts.IamRole",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="policy_requests",
    )
    # Kept when the role disappears from the inventory, for the audit trail.
    role_arn = models.CharField("role ARN", max_length=2048)
    account = models.ForeignKey(
        "accounts.AwsAccount", on_delete=models.PROTECT, related_name="policy_requests"
    )
    justification = models.TextField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="Temporary access: removed from AWS at this time."
    )
    extends = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="extensions"
    )
    approvals_required = models.PositiveSmallIntegerField(
        default=1,
        help_text="Distinct reviewers who must approve: the highest of the accounts it changes.",
    )
    expiry_reminded_at = models.DateTimeField(null=True, blank=True)
    # The approval policy that decided who approves the request (none: the
    # accounts' rule), and a snapshot of what it required and why it matched,
    # taken at submit and after each edit: a later change to the policy never
    # changes what a pending request needs.
    approval_policy = models.ForeignKey(
        "ApprovalPolicy",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="requests",
    )
    approval_requirement = models.JSONField(default=dict, blank=True)

    class Risk(models.TextChoices):
        ERROR = "error"
        WARNING = "warning"
        INFO = "info"
        NONE = "none"

    # The findings on its changes and the highest severity among them, stored
    # at submit and after each edit so that the queue shows them as they were
    # judged. Blank: submitted before findings were stored.
    risk = models.CharField(max_length=8, choices=Risk.choices, blank=True)
    findings = models.JSONField(default=list, blank=True)
    # Kept up to date by the services whenever the changes or the expiry change;
    # requests_app.revision recomputes it from the rows.
    revision = models.CharField(
        max_length=64,
        blank=True,
        editable=False,
        help_text="Hash of the changes and the expiry: what an approval is for.",
    )
    # The lease on its background work (an apply, or an expiry): the worker
    # holding it renews it between changes; once it has expired, the sweep
    # re-enqueues the work and any worker may take it over (the holder died,
    # or its task was lost).
    lease_owner = models.CharField(max_length=200, blank=True, help_text="host:pid:claim")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(
        null=True, blank=True, help_text="When its apply or expiry task was last handed over."
    )
    attempts = models.PositiveSmallIntegerField(
        default=0, help_text="How many times its apply or expiry task was handed to the broker."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "-created_at"]),
            models.Index(fields=["requester", "-created_at"]),
            # The sweep's scan for work in flight.
            models.Index(
                fields=["status", "enqueued_at"],
                name="request_work_in_flight",
                condition=models.Q(status__in=["approved", "applying", "expiring"]),
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.role_arn} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.PENDING

    @property
    def in_progress(self) -> bool:
        """A background job has it (applying, or removing expired access): what
        the request's page shows changes without anyone doing anything."""
        return self.status in (self.Status.APPROVED, self.Status.APPLYING, self.Status.EXPIRING)


class Change(models.Model):
    class Type(models.TextChoices):
        INLINE_POLICY_PUT = "inline_policy_put", "Add or update an inline policy"
        INLINE_POLICY_DELETE = "inline_policy_delete", "Delete an inline policy"
        MANAGED_POLICY_ATTACH = "managed_policy_attach", "Attach a managed policy"
        MANAGED_POLICY_DETACH = "managed_policy_detach", "Detach a managed policy"
        TRUST_POLICY_UPDATE = "trust_policy_update", "Update the trust policy"
        TAGS_PUT = "tags_put", "Add or update tags"
        TAGS_DELETE = "tags_delete", "Delete tags"
        PERMISSIONS_BOUNDARY_PUT = "permissions_boundary_put", "Set the permissions boundary"
        PERMISSIONS_BOUNDARY_DELETE = (
            "permissions_boundary_delete",
            "Remove the permissions boundary",
        )
        MANAGED_POLICY_CREATE = "managed_policy_create", "Create a customer-managed policy"
        MANAGED_POLICY_VERSION = "managed_policy_version", "New default version of a managed policy"
        RESOURCE_POLICY_PUT = "resource_policy_put", "Update a resource policy"
        ROLE_CREATE = "role_create", "Create a role"
        ROLE_DELETE = "role_delete", "Delete a role"
        ROLE_UPDATE = "role_update", "Change a role's description or session duration"
        ROLE_ACCESS_GRANT = "role_access_grant", "Let the requester use the role"

    class Status(models.TextChoices):
        PENDING = "pending"
        APPLIED = "applied"
        FAILED = "failed"
        CANCELLED = "cancelled"
        REVERTED = "reverted"

    request = models.ForeignKey(PolicyRequest, on_delete=models.CASCADE, related_name="changes")
    position = models.PositiveSmallIntegerField(default=0)
    type = models.CharField(max_length=40, choices=Type.choices)
    target_arn = models.CharField(max_length=2048)
    account_id = models.CharField(max_length=12)
    payload = models.JSONField(help_text="What to apply, e.g. the policy name and document.")
    previous = models.JSONField(
        null=True, blank=True, help_text="What was there when the request was made."
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    # Added by iamportal, not the requester: the other half of a cross-account grant.
    automatic = models.BooleanField(default=False)
    note = models.CharField(max_length=500, blank=True, help_text="Why iamportal added it.")
    # What apply learned that undoing needs (e.g. the version it created).
    outcome = models.JSONField(default=dict, blank=True)
    # The worker that claimed it to apply or undo it; only that worker records
    # its outcome, so a worker that was taken over cannot overwrite the result.
    claimed_by = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["request", "position", "id"]

    def __str__(self) -> str:
        return f"{self.get_type_display()} on {self.target_arn}"


class Approval(models.Model):
    """One reviewer's approval; a request needs `approvals_required` distinct ones.
    An automatic approval has no reviewer: it names the approval policy that
    allowed it."""

    request = models.ForeignKey(PolicyRequest, on_delete=models.CASCADE, related_name="approvals")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    self_approval = models.BooleanField(default=False)
    automatic = models.BooleanField(default=False)
    policy_name = models.CharField(
        max_length=100, blank=True, help_text="The approval policy that approved it automatically."
    )
    # The request's revision the reviewer saw and approved; apply needs every
    # approval to carry the current one.
    revision = models.CharField(max_length=64, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["request", "reviewer"], name="approval_one_per_reviewer"
            )
        ]

    def __str__(self) -> str:
        return f"approval of #{self.request_id}"


class ApprovalPolicy(models.Model):
    """Who approves which requests, defined by admins. Policies are tried in
    order and the first whose every condition holds decides; a request no
    policy matches needs the approvals its accounts require."""

    class Kind(models.TextChoices):
        ANY = "", "Any request"
        ACCESS = "access", "Access to a role"
        PERMISSION = "permission", "Permission change (no access to a role)"
        CHANGE_TYPES = "change_types", "Only the change types listed"

    class Severity(models.TextChoices):
        ANY = "", "Any"
        NONE = "none", "No findings"
        INFO = "info", "Info at most"
        WARNING = "warning", "Warning at most"
        ERROR = "error", "Error at most"

    name = models.CharField(max_length=100, unique=True)
    order = models.IntegerField(default=100, help_text="Lower first; the first match decides.")
    enabled = models.BooleanField(default=True)
    accounts = models.ManyToManyField(
        "accounts.AwsAccount",
        blank=True,
        related_name="+",
        help_text="Matches when every account the request changes is one of these. None: all.",
    )
    role_arn_pattern = models.CharField(
        "role ARN pattern",
        max_length=2048,
        blank=True,
        help_text="Shell pattern, ignoring case, on the role's ARN "
        "(arn:aws:iam::*:role/ReadOnly*), or on its name (or path and name, with a /) "
        "when it does not start with arn:.",
    )
    role_tag = models.CharField(
        max_length=300,
        blank=True,
        help_text="key=value (or key alone) the role must carry, e.g. "
        "iamportal-approvers=group:payments-leads. Keys and values ignore case.",
    )
    request_kind = models.CharField(
        max_length=16, choices=Kind.choices, blank=True, default=Kind.ANY
    )
    change_types = models.JSONField(
        default=list,
        blank=True,
        help_text='With "Only the change types listed": every change of the request is one of '
        'these types, e.g. ["inline_policy_put", "tags_put"].',
    )
    max_duration = models.DurationField(
        null=True,
        blank=True,
        help_text="Only temporary requests lasting at most this long (e.g. 8:00:00); permanent "
        "ones never match. Empty: any duration.",
    )
    max_severity = models.CharField(
        max_length=8,
        choices=Severity.choices,
        blank=True,
        default=Severity.ANY,
        help_text="Only requests whose highest finding is at most this severe.",
    )
    automatic = models.BooleanField(
        default=False,
        help_text="Approve matching requests without a reviewer. Never for requests with "
        "error findings: those go on to the next policy.",
    )
    reviewer_groups = models.ManyToManyField(
        "auth.Group",
        blank=True,
        related_name="+",
        help_text="Reviewers in one of these groups may approve. None: any reviewer.",
    )
    approvals_required = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(5)],
        help_text="Distinct reviewers who must approve (ignored when automatic).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["order", "id"]
        verbose_name_plural = "approval policies"

    def __str__(self) -> str:
        return self.name


class ApprovalPolicyChange(models.Model):
    """The audit of approval policies: who created, changed or deleted one, when,
    and what it was before and after. Written only by the services."""

    class Action(models.TextChoices):
        CREATED = "created"
        CHANGED = "changed"
        DELETED = "deleted"

    policy = models.ForeignKey(
        ApprovalPolicy, null=True, blank=True, on_delete=models.SET_NULL, related_name="history"
    )
    policy_name = models.CharField(max_length=100)
    action = models.CharField(max_length=8, choices=Action.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.policy_name} {self.action}"


class Comment(models.Model):
    request = models.ForeignKey(PolicyRequest, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"comment on #{self.request_id}"


class RequestEvent(models.Model):
    """The append-only timeline of a request: who did what, when."""

    class Kind(models.TextChoices):
        SUBMITTED = "submitted"
        COMMENTED = "commented"
        APPROVED = "approved"
        REJECTED = "rejected"
        CANCELLED = "cancelled"
        APPLYING = "applying"
        APPLIED = "applied"
        FAILED = "failed"
        RETRIED = "retried"
        EDITED = "edited"
        # Approvals for another revision than the request's, found and dropped.
        WITHDRAWN = "withdrawn", "Approvals withdrawn"
        EXPIRED = "expired"
        EXPIRY_FAILED = "expiry_failed"
        EXTENDED = "extended"
        RECOVERED = "recovered"
        # An access grant ended before its time by a reviewer, an admin or its holder.
        REVOKED = "revoked"

    request = models.ForeignKey(PolicyRequest, on_delete=models.CASCADE, related_name="events")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    message = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"#{self.request_id} {self.kind}"


class Notification(models.Model):
    """The outbox: one email event about a request, written in the transaction of
    the action it tells about and sent by a task afterwards. The sweep hands it
    to the broker again until it is sent or has used up its attempts."""

    class Kind(models.TextChoices):
        SUBMITTED = "submitted"
        APPROVED = "approved"
        REJECTED = "rejected"
        APPLIED = "applied"
        FAILED = "failed"
        COMMENTED = "commented"
        EDITED = "edited"
        EXPIRING = "expiring"
        EXPIRED = "expired"

    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        FAILED = "failed"

    request = models.ForeignKey(
        PolicyRequest, on_delete=models.CASCADE, related_name="notifications"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    comment = models.ForeignKey(
        Comment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(
        default=0, help_text="How many times its task was handed to the broker."
    )
    lease_owner = models.CharField(max_length=200, blank=True, help_text="host:pid:claim")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    emails_sent = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["enqueued_at"],
                name="notification_pending",
                condition=models.Q(status="pending"),
            ),
            models.Index(fields=["request", "-created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.kind} email about #{self.request_id} ({self.status})"
