"""Business actions on identity: personal API tokens, and the accounts that
identity sources (single sign-on, an authenticating proxy, client certificates)
sign people in to."""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from iamportal.models import ApiToken, ExternalIdentity

log = logging.getLogger(__name__)

TOKEN_LIFETIMES_DAYS = (30, 90, 365)
MAX_ACTIVE_TOKENS = 20


class TokenLimitError(Exception):
    pass


def api_token_create(*, user: User, name: str, expires_in_days: int | None) -> tuple[ApiToken, str]:
    """A new token for `user`. Returns the row and the raw token, which is shown
    once and never stored."""
    active = ApiToken.objects.filter(user=user, revoked_at=None).exclude(
        expires_at__lte=timezone.now()
    )
    if active.count() >= MAX_ACTIVE_TOKENS:
        raise TokenLimitError(
            f"You already have {MAX_ACTIVE_TOKENS} active tokens; revoke one first."
        )
    raw = ApiToken.PREFIX + secrets.token_urlsafe(32)
    expires_at = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
    token = ApiToken.objects.create(
        user=user,
        name=name.strip(),
        hint=raw[: len(ApiToken.PREFIX) + 6],
        digest=ApiToken.hash(raw),
        expires_at=expires_at,
    )
    return token, raw


def api_token_revoke(*, token: ApiToken) -> None:
    ApiToken.objects.filter(pk=token.pk, revoked_at=None).update(revoked_at=timezone.now())


# --- external identities ------------------------------------------------------------------

# A proxy's identity is checked on every request: its last sign-in is kept coarsely.
IDENTITY_LAST_LOGIN_PRECISION = timedelta(minutes=1)
IDENTITY_KEY_MAX_LENGTH = 255

REASON_PRIVILEGED_ACCOUNT = (
    "iamportal already has an account with your email address, and it is a local "
    "account (it has a password) or has administrator or reviewer rights, so iamportal "
    "does not join your sign-in to it by email. Ask an iamportal administrator to link "
    "your identity to that account, then sign in again."
)
REASON_EMAIL_TAKEN = (
    "Your email address belongs to an iamportal account that signs in with another "
    "identity from the same identity provider, so iamportal does not let this one in. "
    "Ask an iamportal administrator: the address may have moved from one person to "
    "another at your identity provider."
)
REASON_UNUSABLE_IDENTITY = (
    "Your identity provider sent an identity iamportal cannot store (empty, or longer "
    f"than {IDENTITY_KEY_MAX_LENGTH} characters). Tell an iamportal administrator."
)


class IdentityRefused(Exception):
    """A sign-in iamportal will not complete; the message says why and whom to ask."""


def external_identity_sign_in(
    *,
    kind: ExternalIdentity.Kind,
    issuer: str,
    subject: str,
    email: str,
    first_name: str = "",
    last_name: str = "",
) -> User:
    """The account an identity source's user signs in to.

    The account linked to the identity's key, whatever its email is today. On the
    first sign-in, an existing account with that email is linked only when an email
    match cannot hand over more than an ordinary single sign-on account has: no
    usable password, neither staff nor superuser, and no other identity from the same
    source (IAMPORTAL_SSO_LINK_LOCAL_ACCOUNTS lifts the first two conditions). With no
    account of that email, a new one is created. Raises IdentityRefused otherwise."""
    issuer, subject, email = issuer.strip(), subject.strip(), email.strip()
    if not subject or len(subject) > IDENTITY_KEY_MAX_LENGTH or len(issuer) > 255:
        log.warning("sign-in refused: unusable %s identity key (%d characters)", kind, len(subject))
        raise IdentityRefused(REASON_UNUSABLE_IDENTITY)
    try:
        return _identity_sign_in(
            kind=kind, issuer=issuer, subject=subject, email=email, names=(first_name, last_name)
        )
    except IntegrityError:
        # Two first sign-ins of the same identity raced (a proxy's parallel requests):
        # the other one stored the key, so this one now finds it.
        return _identity_sign_in(
            kind=kind, issuer=issuer, subject=subject, email=email, names=(first_name, last_name)
        )


@transaction.atomic
def _identity_sign_in(
    *,
    kind: ExternalIdentity.Kind,
    issuer: str,
    subject: str,
    email: str,
    names: tuple[str, str],
) -> User:
    now = timezone.now()
    key = {"kind": kind, "issuer": issuer, "subject": subject}
    identity = ExternalIdentity.objects.select_related("user").filter(**key).first()
    if identity is None:
        user = _account_for_new_identity(kind=kind, issuer=issuer, email=email, names=names)
        ExternalIdentity.objects.create(**key, user=user, last_login_at=now)
        log.info("%s identity linked to user %s on its first sign-in", kind, user.pk)
        return user
    user = identity.user
    last = identity.last_login_at
    if last is None or now - last > IDENTITY_LAST_LOGIN_PRECISION:
        ExternalIdentity.objects.filter(pk=identity.pk).update(last_login_at=now)
    _email_follow(user=user, email=email)
    return user


def _account_for_new_identity(
    *, kind: ExternalIdentity.Kind, issuer: str, email: str, names: tuple[str, str]
) -> User:
    existing = User.objects.filter(email__iexact=email).order_by("pk").first() if email else None
    if existing is None:
        return _user_create(email=email, names=names)
    if ExternalIdentity.objects.filter(user=existing, kind=kind, issuer=issuer).exists():
        log.warning(
            "sign-in refused: a new %s identity has the email of user %s, who signs in "
            "with another identity from the same source",
            kind,
            existing.pk,
        )
        raise IdentityRefused(REASON_EMAIL_TAKEN)
    privileges = [
        label
        for label, held in (
            ("a usable password", existing.has_usable_password()),
            ("staff status", existing.is_staff),
            ("superuser status", existing.is_superuser),
        )
        if held
    ]
    if privileges and not settings.IAMPORTAL_SSO_LINK_LOCAL_ACCOUNTS:
        log.warning(
            "sign-in refused: a new %s identity has the email of user %s, which has %s; "
            "not linked by email (an administrator can link it)",
            kind,
            existing.pk,
            ", ".join(privileges),
        )
        raise IdentityRefused(REASON_PRIVILEGED_ACCOUNT)
    return existing


def _user_create(*, email: str, names: tuple[str, str]) -> User:
    username = email.lower()[:150]
    if User.objects.filter(username__iexact=username).exists():
        # A local account already uses this name for someone else's email:
        # never merge the two, give the new person a distinct name.
        username = f"{username[:140]}-{secrets.token_hex(4)}"
    return User.objects.create_user(
        username=username, email=email, first_name=names[0][:150], last_name=names[1][:150]
    )


def _email_follow(*, user: User, email: str) -> None:
    """Keep the account's email what the identity source says today (role tags and
    AWS session names use it), unless another account already has that address."""
    if not email or email.lower() == user.email.lower():
        return
    if User.objects.filter(email__iexact=email).exclude(pk=user.pk).exists():
        log.warning(
            "user %s kept their email: the identity source's new address belongs to "
            "another account",
            user.pk,
        )
        return
    user.email = email
    user.save(update_fields=["email"])
