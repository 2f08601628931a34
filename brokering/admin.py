"""Django admin for who may use which role, the issuance audit log, the revoked
sessions, and disabling a user (which ends their sessions)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import flatten_fieldsets, unquote
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.forms import ModelForm
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from accounts.models import IamRole
from brokering import selectors, services
from brokering.eligibility import roles_matching
from brokering.models import AccessRule, CliChallenge, CredentialIssuance, SessionRevocation
from brokering.selectors import access_rule_preview
from iamportal import permissions
from iamportal.admin import AdminsManageAdmin, ReadOnlyAdmin, RefusesDeletion

# The change form lists this many of the roles a rule matches; its preview, more.
MATCHES_SHOWN = 20
PREVIEW_SHOWN = 100

PATTERN_HELP = (
    "A rule lets a group, or one user, use every role whose ARN matches its pattern: "
    "a whole ARN, or a pattern where * stands for any run of characters and ? for one "
    "character, for example arn:aws:iam::123456789012:role/payments-* (one account) or "
    "arn:aws:iam::*:role/ReadOnly (every account). Case does not matter. Tags on the "
    "roles grant access too; a user may use a role when any tag or enabled rule says so, "
    "and gets a console session unless every grant is CLI only. Changes apply at once, "
    "and so does an expiry: from its moment the rule grants nothing. Preview lists the "
    "roles the pattern matches before you save."
)


@admin.register(AccessRule)
class AccessRuleAdmin(AdminsManageAdmin):
    list_display = [
        "subject",
        "role_pattern",
        "cli_only",
        "enabled",
        "expires_at",
        "description",
        "updated_at",
    ]
    list_filter = ["enabled", "cli_only"]
    search_fields = ["role_pattern", "description", "group__name", "user__email"]
    list_select_related = ["group", "user"]
    raw_id_fields = ["user"]
    readonly_fields = ["matching_roles", "request", "created_at", "updated_at"]
    fieldsets = [
        (
            None,
            {
                "description": PATTERN_HELP,
                "fields": [
                    "group",
                    "user",
                    "role_pattern",
                    "cli_only",
                    "description",
                    "enabled",
                    "starts_at",
                    "expires_at",
                    "request",
                ],
            },
        ),
        ("Effect", {"fields": ["matching_roles", "created_at", "updated_at"]}),
    ]

    @admin.display(description="group or user")
    def subject(self, rule: AccessRule) -> str:
        if rule.group is not None:
            return f"group {rule.group.name}"
        if rule.user is not None:
            return f"user {rule.user.email or rule.user.get_username()}"
        return "-"

    @admin.display(description="roles matching now")
    def matching_roles(self, rule: AccessRule) -> SafeString | str:
        if not rule.role_pattern:
            return "-"
        arns = roles_matching(rule.role_pattern, exact=rule.request_id is not None)
        count = f"{len(arns)} role{'' if len(arns) == 1 else 's'}"
        if not arns:
            return f"{count}: no synced role matches this pattern."
        more = len(arns) - MATCHES_SHOWN
        shown = ((arn,) for arn in arns[:MATCHES_SHOWN])
        items = format_html_join("", '<li class="mono">{}</li>', shown)
        return format_html("{}<ul>{}</ul>{}", count, items, f"and {more} more" if more > 0 else "")

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        if request.method == "POST" and "_preview" in request.POST:
            return self._preview_view(request, object_id, form_url, extra_context)
        return super().changeform_view(request, object_id, form_url, extra_context)

    def _preview_view(
        self,
        request: HttpRequest,
        object_id: str | None,
        form_url: str,
        extra_context: dict[str, Any] | None,
    ) -> HttpResponse:
        """The change form again, as filled in, with the roles the rule would
        match listed under it. Nothing is saved."""
        obj = self.get_object(request, unquote(object_id)) if object_id else None
        if object_id and obj is None:
            raise Http404("No such access rule.")
        add = obj is None
        allowed = (
            self.has_add_permission(request) if add else self.has_change_permission(request, obj)
        )
        if not allowed:
            raise PermissionDenied
        fieldsets = self.get_fieldsets(request, obj)
        form_class = self.get_form(
            request, obj, change=not add, fields=flatten_fieldsets(fieldsets)
        )
        form = form_class(request.POST, request.FILES, instance=obj)
        form.is_valid()  # its errors show, as on a save
        admin_form = helpers.AdminForm(
            form,
            list(fieldsets),  # type: ignore[arg-type]
            self.get_prepopulated_fields(request, obj) if add else {},
            self.get_readonly_fields(request, obj),
            model_admin=self,
        )
        pattern = str(request.POST.get("role_pattern", ""))[:2048]
        expires_at = form.cleaned_data.get("expires_at") if hasattr(form, "cleaned_data") else None
        context = {
            **self.admin_site.each_context(request),
            "title": f"{'Add' if add else 'Change'} access rule: preview",
            "subtitle": None,
            "adminform": admin_form,
            "object_id": object_id,
            "original": obj,
            "is_popup": False,
            "to_field": None,
            "media": self.media + admin_form.media,
            "inline_admin_formsets": [],
            "errors": helpers.AdminErrorList(form, []),
            "preview": access_rule_preview(pattern=pattern, limit=PREVIEW_SHOWN),
            "preview_pattern": pattern,
            "preview_expired": expires_at is not None and expires_at <= timezone.now(),
            **(extra_context or {}),
        }
        return self.render_change_form(
            request, context, add=add, change=not add, obj=obj, form_url=form_url
        )

    def save_model(self, request: HttpRequest, obj: AccessRule, form: Any, change: bool) -> None:
        services.access_rule_save(rule=obj)

    def delete_model(self, request: HttpRequest, obj: AccessRule) -> None:
        services.access_rule_delete(rule=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[AccessRule]) -> None:
        for rule in queryset:
            services.access_rule_delete(rule=rule)


@admin.register(CredentialIssuance)
class CredentialIssuanceAdmin(ReadOnlyAdmin):
    """The audit log of credential and console requests; never the secrets."""

    list_display = [
        "requested_at",
        "user_email",
        "role_arn",
        "kind",
        "outcome",
        "source_ip",
        "expiration",
    ]
    list_filter = ["kind", "outcome", "account_id", "ip_restricted"]
    date_hierarchy = "requested_at"
    search_fields = ["user_email", "user__email", "role_arn"]
    list_select_related = ["user"]
    fields = readonly_fields = (
        "requested_at",
        "user",
        "user_email",
        "role_arn",
        "role_page",
        "account_id",
        "kind",
        "outcome",
        "error",
        "source_ip",
        "user_agent",
        "expiration",
        "ip_restricted",
        "request_id",
    )

    @admin.display(description="role page")
    def role_page(self, issuance: CredentialIssuance) -> SafeString | str:
        role = IamRole.objects.select_related("account").filter(arn=issuance.role_arn).first()
        if role is None:
            return "-"
        url = reverse("role_detail", args=[role.account.account_id, role.name])
        return format_html('<a href="{}">open page</a>', url)


@admin.register(CliChallenge)
class CliChallengeAdmin(ReadOnlyAdmin):
    """Weep challenge logins, for admins investigating a sign-in. The token is a
    bearer secret while pending, so it is not shown."""

    list_display = ["requested_user", "user", "requesting_ip", "status", "created_at", "expires_at"]
    list_filter = ["status"]
    search_fields = ["requested_user", "user__email", "requesting_ip"]
    list_select_related = ["user"]
    fields = readonly_fields = (
        "requested_user",
        "user",
        "requesting_ip",
        "status",
        "created_at",
        "expires_at",
        "approved_at",
    )

    def has_module_permission(self, request: HttpRequest) -> bool:
        return permissions.is_admin(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return permissions.is_admin(request.user)


@admin.register(SessionRevocation)
class SessionRevocationAdmin(ReadOnlyAdmin):
    """Sessions ended on a role: the Deny iamportal put there, until it is lifted."""

    list_display = [
        "created_at",
        "session_name",
        "role_arn",
        "issued_before",
        "status",
        "remove_after",
        "actor",
    ]
    list_filter = ["status"]
    search_fields = ["session_name", "role_arn", "user__email", "reason"]
    list_select_related = ["actor"]
    fields = readonly_fields = (
        "role_arn",
        "user",
        "session_name",
        "issued_before",
        "remove_after",
        "actor",
        "reason",
        "status",
        "last_error",
        "attempts",
        "lease_owner",
        "lease_expires_at",
        "enqueued_at",
        "created_at",
        "applied_at",
        "removed_at",
    )

    def has_module_permission(self, request: HttpRequest) -> bool:
        return permissions.is_reviewer(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return permissions.is_reviewer(request.user)


admin.site.unregister(User)


@admin.register(User)
class UserDisablingAdmin(RefusesDeletion, UserAdmin):
    """Django's user admin, where disabling a user (the action, or clearing
    "Active") also ends the sessions iamportal gave them."""

    actions = ["deactivate"]

    def has_deactivate_permission(self, request: HttpRequest) -> bool:
        return permissions.is_admin(request.user)

    @admin.action(description="Disable and end their AWS sessions", permissions=["deactivate"])
    def deactivate(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        ended = 0
        for user in queryset:
            ended += len(services.user_deactivate(user=user, actor=request.user))  # type: ignore[arg-type]
        self.message_user(
            request,
            f"Disabled {len(queryset)} user(s); ending their sessions on {ended} role(s).",
            messages.SUCCESS,
        )

    def deletion_refusals(self, objs: Any) -> list[str]:
        return selectors.users_holding_sessions([user.pk for user in objs])

    def save_model(
        self, request: HttpRequest, obj: User, form: ModelForm[User], change: bool
    ) -> None:
        was_active = bool(change and form.initial.get("is_active"))
        super().save_model(request, obj, form, change)
        if was_active and not obj.is_active:
            revocations = services.user_deactivate(user=obj, actor=request.user)  # type: ignore[arg-type]
            self.message_user(
                request,
                f"Ending the sessions of {obj.get_username()} on {len(revocations)} role(s).",
                messages.SUCCESS,
            )
