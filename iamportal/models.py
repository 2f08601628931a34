import hashlib

from django.conf import settings
from django.db import models
from django.utils import timezone


class JobStatus(models.Model):
    """Last success and failure of each background job, for /metrics and /status."""

    name = models.CharField(max_length=100, unique=True)
    last_started_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        verbose_name_plural = "job statuses"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ApiToken(models.Model):
    """A personal token for scripts. Only its SHA-256 digest is stored: the token
    is shown once, when it is created."""

    PREFIX = "iamp_"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=100)
    # The first characters of the token, so its owner can tell tokens apart.
    hint = models.CharField(max_length=16)
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.hint}…)"

    @staticmethod
    def hash(raw: str) -> str:
        # Tokens are 256 random bits, so a fast hash is enough to make the table useless.
        return hashlib.sha256(raw.encode()).hexdigest()

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_usable(self) -> bool:
        return self.revoked_at is None and not self.is_expired


class Revision(models.Model):
    """A counter other processes can read cheaply to know a cache went stale
    (the access index after a sync or a rule change)."""

    name = models.CharField(max_length=100, primary_key=True)
    value = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name}@{self.value}"


class LoginFailure(models.Model):
    """A failed password sign-in, counted to slow down password guessing."""

    username = models.CharField(max_length=150, db_index=True)
    source_ip = models.GenericIPAddressField(null=True, blank=True, db_index=True)
    at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return f"{self.username} from {self.source_ip} at {self.at}"


class ExternalIdentity(models.Model):
    """Who an identity source says someone is, by a key that source never reuses:
    an OpenID Connect issuer and subject, the user id an authenticating proxy
    sends, a client certificate's identity. Stored on the first sign-in; later
    sign-ins find the account by this key alone, never by email, so an email
    changed at the provider keeps the account and an email handed to someone
    else there does not hand them the account."""

    class Kind(models.TextChoices):
        OIDC = "oidc", "single sign-on (OpenID Connect)"
        PROXY = "proxy", "authenticating proxy"
        CERTIFICATE = "certificate", "client certificate"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    # Empty for proxies and certificates: there is one of each per installation.
    issuer = models.CharField(max_length=255, blank=True)
    subject = models.CharField(max_length=255)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="external_identities"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_login_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["kind", "issuer", "subject"]
        verbose_name = "external identity"
        verbose_name_plural = "external identities"
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "issuer", "subject"], name="external_identity_unique_key"
            )
        ]

    def __str__(self) -> str:
        source = f"{self.kind} {self.issuer}".strip()
        return f"{source}: {self.subject}"
