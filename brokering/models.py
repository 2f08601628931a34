from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.db.models import Q
from django.utils import timezone


class AccessRule(models.Model):
    """Lets a group or a user use the roles whose ARN matches a pattern."""

    group = models.ForeignKey(
        Group, null=True, blank=True, on_delete=models.CASCADE, related_name="access_rules"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="access_rules",
    )
    role_pattern = models.CharField(
        max_length=2048,
        help_text="A role ARN, or a pattern with * and ? such as "
        "arn:aws:iam::123456789012:role/payments-* or arn:aws:iam::*:role/ReadOnly. "
        "Case-insensitive.",
    )
    cli_only = models.BooleanField(
        "CLI only",
        default=False,
        help_text="Credentials for the command line only; never a console session.",
    )
    description = models.CharField(max_length=200, blank=True)
    enabled = models.BooleanField(default=True)
    expires_at = models.DateTimeField(
        "expires",
        null=True,
        blank=True,
        help_text="Optional. From this moment (UTC) the rule grants nothing; empty: never.",
    )
    starts_at = models.DateTimeField(
        "starts",
        null=True,
        blank=True,
        help_text="Optional. The rule grants nothing before this moment (UTC); empty: at once.",
    )
    # Set on the grant an approved access request made: the rule is that grant.
    request = models.OneToOneField(
        "requests_app.PolicyRequest",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="grant",
        help_text="The access request this grant was made for.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["role_pattern"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(group__isnull=False) & Q(user__isnull=True))
                | (Q(group__isnull=True) & Q(user__isnull=False)),
                name="access_rule_group_xor_user",
                violation_error_message="Choose a group or a user, not both.",
            )
        ]

    def __str__(self) -> str:
        subject = f"group {self.group}" if self.group_id else f"user {self.user}"
        return f"{subject} → {self.role_pattern}{' (CLI only)' if self.cli_only else ''}"

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def is_started(self, now: datetime) -> bool:
        return self.starts_at is None or self.starts_at <= now


class CredentialIssuance(models.Model):
    """One request for credentials or a console session: who, which role, from
    where, and what came of it. Never the credentials themselves."""

    class Kind(models.TextChoices):
        CLI = "cli", "CLI (Weep)"
        CONSOLE = "console", "Console"
        API = "api", "API"
        # The "Environment variables" button on a role's CLI page.
        WEB = "web", "Web (environment variables)"
        # An RDS IAM authentication token made with the role's credentials.
        DATABASE = "database", "Database password"

    class Outcome(models.TextChoices):
        ISSUED = "issued"
        DENIED = "denied"
        FAILED = "failed"
        RATE_LIMITED = "rate_limited", "rate limited"

    # Indexed by (user, -requested_at) below, which also serves the foreign key:
    # every credential request writes a row, and each index costs it time.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    user_email = models.CharField(max_length=254, blank=True)
    role_arn = models.CharField("role ARN", max_length=2048)
    account_id = models.CharField(max_length=12, blank=True, db_index=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    error = models.TextField(blank=True)
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    requested_at = models.DateTimeField(default=timezone.now)
    expiration = models.DateTimeField(null=True, blank=True)
    ip_restricted = models.BooleanField(default=False)
    request_id = models.CharField(max_length=64, blank=True)
    target = models.CharField(
        max_length=512,
        blank=True,
        help_text="What the credentials were for beyond the role: a database and its user.",
    )

    class Meta:
        ordering = ["-requested_at", "-id"]
        indexes = [
            models.Index(fields=["user", "-requested_at"]),
            models.Index(fields=["role_arn", "-requested_at"]),
            models.Index(fields=["-requested_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.user_email} {self.kind} {self.role_arn} ({self.outcome})"


class CredentialRateWindow(models.Model):
    """One user's credential count in the current minute. Taking a slot is one
    conditional UPDATE, so concurrent requests of a user never exceed the limit.
    On PostgreSQL the table is unlogged (migration 0009): a slot taken does not
    wait for the write-ahead log, and a crash only gives everyone a new minute."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True
    )
    window_start = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.user_id}: {self.count} since {self.window_start:%H:%M:%S}"


def _challenge_token() -> str:
    return secrets.token_urlsafe(32)


class CliChallenge(models.Model):
    """A Weep challenge login: the CLI asks for it, the user approves it in a
    browser where they are signed in, the CLI polls for its token once."""

    class Status(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        USED = "used"
        UNAUTHORIZED = "unauthorized"

    LIFETIME = timedelta(minutes=2)

    token = models.CharField(max_length=64, unique=True, default=_challenge_token)
    requested_user = models.CharField(max_length=254)
    requesting_ip = models.GenericIPAddressField()
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    approved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "CLI challenge"

    def __str__(self) -> str:
        return f"CLI login for {self.requested_user} ({self.status})"

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()


class SessionRevocation(models.Model):
    """Ends the sessions a user already holds on a role: a Deny, in an inline
    policy iamportal owns on the role, of every session named for the user and
    issued before `issued_before`. Applied by a task (with a lease, as every
    background job); removed by a sweep after `remove_after`, when every session
    issued before that time has expired anyway."""

    class Status(models.TextChoices):
        PENDING = "pending"
        APPLIED = "applied"
        FAILED = "failed"
        REMOVED = "removed"

    role = models.ForeignKey(
        "accounts.IamRole", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    account = models.ForeignKey(
        "accounts.AwsAccount", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    role_arn = models.CharField("role ARN", max_length=2048)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    session_name = models.CharField(max_length=64)
    issued_before = models.DateTimeField()
    remove_after = models.DateTimeField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    reason = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(
        default=0, help_text="How many times its task was handed to the broker."
    )
    lease_owner = models.CharField(max_length=200, blank=True, help_text="host:pid:claim")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    removed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "remove_after"]),
            models.Index(fields=["role_arn", "session_name"]),
        ]

    def __str__(self) -> str:
        return f"sessions of {self.session_name} on {self.role_arn} ({self.status})"
