from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.db.models import JSONField, Model, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString

from iamportal import permissions
from iamportal.forms import BoundedJSONField
from iamportal.models import ApiToken, ExternalIdentity, JobStatus
from iamportal.services import api_token_revoke

# The admin is another face of iamportal: its name, and a way back to the site.
admin.site.site_header = "iamportal administration"
admin.site.site_title = "iamportal admin"
admin.site.index_title = "Accounts, access rules, requests and background jobs"
admin.site.site_url = "/"


def pretty_json(value: Any) -> SafeString:
    return format_html('<pre class="json">{}</pre>', json.dumps(value, indent=2, default=str))


class RefusesDeletion(admin.ModelAdmin):
    """An admin whose delete pages (one object or many) refuse, saying why, what
    deleting would leave unsafe: the reasons are listed as what stands in the
    way, and nothing is deleted until they are gone."""

    def deletion_refusals(self, objs: Any) -> list[str]:
        return []

    def get_deleted_objects(
        self, objs: Any, request: HttpRequest
    ) -> tuple[list[Any], dict[str, int], set[str], list[Any]]:
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        return deleted, counts, perms_needed, [*protected, *self.deletion_refusals(objs)]


class AdminsManageAdmin(admin.ModelAdmin):
    """Configuration that iamportal admins manage (accounts, access rules,
    templates). Decided by iamportal.permissions, not Django's model permissions,
    so the admin site and the pages agree."""

    formfield_overrides = {JSONField: {"form_class": BoundedJSONField}}

    def has_module_permission(self, request: HttpRequest) -> bool:
        return permissions.is_admin(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return permissions.is_admin(request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return permissions.is_admin(request.user)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return permissions.is_admin(request.user)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return permissions.is_admin(request.user)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written only by background jobs: viewable by reviewers and admins,
    never edited by hand."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return permissions.is_reviewer(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return permissions.is_reviewer(request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


@admin.register(JobStatus)
class JobStatusAdmin(ReadOnlyAdmin):
    list_display = ["name", "last_started_at", "last_success_at", "last_failure_at"]
    search_fields = ["name"]
    fields = ["name", "last_started_at", "last_success_at", "last_failure_at", "last_error"]


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    """Admins see who holds which tokens and can revoke them; the tokens themselves
    are never stored."""

    list_display = [
        "name",
        "user",
        "hint",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["revoked_at"]
    search_fields = ["name", "user__username", "user__email", "hint"]
    list_select_related = ["user"]
    fields = ["user", "name", "hint", "created_at", "expires_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return permissions.is_admin(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return permissions.is_admin(request.user)

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return permissions.is_admin(request.user)

    @admin.action(description="Revoke", permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        for token in queryset:
            api_token_revoke(token=token)
        self.message_user(request, f"Revoked {queryset.count()} token(s).")


@admin.register(ExternalIdentity)
class ExternalIdentityAdmin(ReadOnlyAdmin):
    """Which single sign-on, proxy and certificate identities sign in to which
    account. Admins may unlink one (its next sign-in links again by the email rules);
    linking one to an existing account by hand hands that account over, so only a
    superuser may add a link."""

    list_display = ["subject", "kind", "issuer", "user", "created_at", "last_login_at"]
    list_filter = ["kind"]
    search_fields = ["subject", "issuer", "user__username", "user__email"]
    list_select_related = ["user"]
    raw_id_fields = ["user"]
    fields = ["kind", "issuer", "subject", "user", "created_at", "last_login_at"]

    def get_readonly_fields(
        self, request: HttpRequest, obj: ExternalIdentity | None = None
    ) -> list[str]:
        if obj is None:
            return ["created_at", "last_login_at"]
        return ["kind", "issuer", "subject", "user", "created_at", "last_login_at"]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return permissions.is_admin(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return permissions.is_admin(request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return bool(getattr(request.user, "is_superuser", False) and request.user.is_active)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return permissions.is_admin(request.user)
