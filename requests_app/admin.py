from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.admin import GroupAdmin
from django.contrib.auth.models import Group, User
from django.db.models import Count, QuerySet
from django.http import Http404, HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from iamportal import permissions
from iamportal.admin import AdminsManageAdmin, ReadOnlyAdmin, RefusesDeletion, pretty_json
from requests_app import services
from requests_app.changes import change_document, change_summary
from requests_app.guardrails import changes_guardrails
from requests_app.models import (
    Approval,
    ApprovalPolicy,
    ApprovalPolicyChange,
    Change,
    Comment,
    Notification,
    PolicyRequest,
    PolicyTemplate,
    RequestEvent,
)
from requests_app.policy.diff import policy_diff
from requests_app.policy.templates import TemplateInvalid, template_check
from requests_app.revision import revision_compute, revision_short
from requests_app.selectors import approval_policies_emptied_by, request_for_user


class PolicyTemplateForm(forms.ModelForm):
    class Meta:
        model = PolicyTemplate
        fields = ["name", "description", "parameters", "document", "enabled"]
        widgets = {"document": forms.Textarea(attrs={"rows": 18, "cols": 100})}

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        document = cleaned.get("document")
        if document is None or "parameters" in self.errors:
            return cleaned
        try:
            template_check(document=document, parameters=cleaned.get("parameters"))
        except TemplateInvalid as exc:
            for field, message in exc.errors.items():
                self.add_error(field if field in self.fields else None, message)
        return cleaned


@admin.register(PolicyTemplate)
class PolicyTemplateAdmin(AdminsManageAdmin):
    form = PolicyTemplateForm
    list_display = ["name", "enabled", "updated_at"]
    list_filter = ["enabled"]
    search_fields = ["name", "description"]


class ApprovalPolicyForm(forms.ModelForm):
    class Meta:
        model = ApprovalPolicy
        fields = [
            "name",
            "order",
            "enabled",
            "accounts",
            "role_arn_pattern",
            "role_tag",
            "request_kind",
            "change_types",
            "max_duration",
            "max_severity",
            "automatic",
            "reviewer_groups",
            "approvals_required",
        ]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        kind = cleaned.get("request_kind")
        if cleaned.get("change_types") is None and "change_types" not in self.errors:
            cleaned["change_types"] = []
        types = cleaned.get("change_types")
        known = {t.value for t in Change.Type}
        if "change_types" in self.errors:
            return cleaned
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
            self.add_error("change_types", 'A list of change types, e.g. ["tags_put"].')
        elif kind == ApprovalPolicy.Kind.CHANGE_TYPES and not types:
            self.add_error("change_types", "List the change types this policy is for.")
        elif kind != ApprovalPolicy.Kind.CHANGE_TYPES and types:
            self.add_error(
                "change_types", 'Change types count only with "Only the change types listed".'
            )
        elif unknown := sorted(set(types) - known):
            self.add_error(
                "change_types",
                f"Unknown change types: {', '.join(unknown)[:200]}. "
                f"Known: {', '.join(sorted(known))}.",
            )
        duration = cleaned.get("max_duration")
        if duration is not None and duration.total_seconds() <= 0:
            self.add_error("max_duration", "A maximum duration is longer than zero.")
        if cleaned.get("automatic") and cleaned.get("reviewer_groups"):
            self.add_error(
                "reviewer_groups", "An automatic policy needs no reviewers: leave the groups empty."
            )
        return cleaned


@admin.register(ApprovalPolicy)
class ApprovalPolicyAdmin(AdminsManageAdmin):
    """Every save and delete goes through the services, which record who changed
    what, before and after."""

    form = ApprovalPolicyForm
    list_display = [
        "order",
        "name",
        "enabled",
        "request_kind",
        "max_duration",
        "max_severity",
        "automatic",
        "approvals_required",
        "updated_at",
    ]
    list_display_links = ["name"]
    list_filter = ["enabled", "automatic", "request_kind"]
    search_fields = ["name", "role_arn_pattern", "role_tag"]
    filter_horizontal = ["accounts", "reviewer_groups"]

    def save_model(
        self, request: HttpRequest, obj: ApprovalPolicy, form: Any, change: bool
    ) -> None:
        services.approval_policy_save(
            policy=obj,
            actor=cast(User, request.user),
            accounts=form.cleaned_data.get("accounts") or [],
            reviewer_groups=form.cleaned_data.get("reviewer_groups") or [],
        )

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # The service already set the accounts and groups, within its audit.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def delete_model(self, request: HttpRequest, obj: ApprovalPolicy) -> None:
        services.approval_policy_delete(policy=obj, actor=cast(User, request.user))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ApprovalPolicy]) -> None:
        for policy in queryset:
            services.approval_policy_delete(policy=policy, actor=cast(User, request.user))


@admin.register(ApprovalPolicyChange)
class ApprovalPolicyChangeAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "policy_name", "action", "actor"]
    list_filter = ["action", "created_at"]
    search_fields = ["policy_name", "actor__username"]
    list_select_related = ["actor"]
    fields = [
        "created_at",
        "policy_name",
        "policy",
        "action",
        "actor",
        "before_pretty",
        "after_pretty",
    ]
    readonly_fields = [
        "created_at",
        "policy_name",
        "policy",
        "action",
        "actor",
        "before_pretty",
        "after_pretty",
    ]

    @admin.display(description="before")
    def before_pretty(self, obj: ApprovalPolicyChange) -> SafeString:
        return pretty_json(obj.before)

    @admin.display(description="after")
    def after_pretty(self, obj: ApprovalPolicyChange) -> SafeString:
        return pretty_json(obj.after)


def _request_link(request: PolicyRequest) -> SafeString:
    url = reverse("admin:requests_app_policyrequest_change", args=[request.pk])
    return format_html('<a href="{}">#{}</a>', url, request.pk)


ADMIN_REJECT_REASON = "Rejected in the admin."
# The admin has its own style sheet; the diff colours come inline.
# Classes styled by admin-diff.css: the Content-Security-Policy allows no inline style.
DIFF_KINDS = {"add", "del", "hunk", "file"}


class _ReadOnlyInline(admin.TabularInline):
    """Rows of a request shown on its admin page; only the services write them."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return permissions.is_reviewer(request.user)


class ApprovalInline(_ReadOnlyInline):
    model = Approval
    fields = ["reviewer", "automatic", "policy_name", "self_approval", "revision", "created_at"]
    readonly_fields = [
        "reviewer",
        "automatic",
        "policy_name",
        "self_approval",
        "revision",
        "created_at",
    ]


class CommentInline(_ReadOnlyInline):
    model = Comment
    fields = ["author", "body", "created_at"]
    readonly_fields = ["author", "body", "created_at"]


@admin.register(PolicyRequest)
class PolicyRequestAdmin(ReadOnlyAdmin):
    class Media:
        css = {"all": ["admin-diff.css"]}

    list_display = [
        "id",
        "kind",
        "role_arn",
        "requester",
        "status",
        "risk",
        "approvals_shown",
        "revision_shown",
        "created_at",
        "expires_at",
    ]
    list_filter = [
        "kind",
        "status",
        "risk",
        "account",
        ("requester", admin.RelatedOnlyFieldListFilter),
        "created_at",
    ]
    search_fields = ["role_arn", "requester__username", "requester__email", "justification"]
    list_select_related = ["requester", "account"]
    date_hierarchy = "created_at"
    fields = [
        "kind",
        "requester",
        "role_arn",
        "account",
        "status",
        "risk",
        "justification",
        "expires_at",
        "approvals_shown",
        "approval_policy_shown",
        "revision_shown",
        "created_at",
        "updated_at",
        "attempts",
        "enqueued_at",
        "lease_owner",
        "lease_expires_at",
        "changes_diff",
    ]
    readonly_fields = [
        "kind",
        "status",
        "risk",
        "approvals_shown",
        "approval_policy_shown",
        "revision_shown",
        "changes_diff",
        "created_at",
        "updated_at",
        "attempts",
        "enqueued_at",
        "lease_owner",
        "lease_expires_at",
    ]
    inlines = [ApprovalInline, CommentInline]
    actions = ["approve", "reject", "revoke_access"]

    def has_review_permission(self, request: HttpRequest) -> bool:
        return permissions.is_reviewer(request.user)

    def _review(
        self, request: HttpRequest, queryset: QuerySet[PolicyRequest], verb: str, action: Any
    ) -> None:
        """Run the same service as the request page on each selected request,
        through the same access gate, reporting each refusal."""
        done = 0
        for pk in queryset.values_list("pk", flat=True):
            try:
                request_for_user(user=request.user, pk=pk, for_review=True)
                action(pk)
            except Http404:
                self.message_user(request, f"#{pk}: no such request.", level=messages.ERROR)
            except services.FindingsNotAcknowledged:
                # Acknowledging error findings happens where they are listed.
                self.message_user(
                    request,
                    format_html(
                        '#{}: it has error-level findings; approve it on <a href="{}">its '
                        "review page</a>, where they are listed and acknowledged.",
                        pk,
                        reverse("request_detail", args=[pk]),
                    ),
                    level=messages.ERROR,
                )
            except services.RequestActionRefused as exc:
                self.message_user(request, f"#{pk}: {exc.message}", level=messages.ERROR)
            else:
                done += 1
        if done:
            self.message_user(request, f"{verb} {done} request(s).", level=messages.SUCCESS)

    @admin.action(description="Approve the selected requests", permissions=["review"])
    def approve(
        self, request: HttpRequest, queryset: QuerySet[PolicyRequest]
    ) -> TemplateResponse | None:
        """First a confirmation page showing each request's changes and the revision
        shown; confirming approves those revisions, and a request that changed in
        between is refused and named."""
        user = cast(User, request.user)  # the admin site admits only signed-in users
        if request.POST.get("post") != "yes":
            return self._approve_confirmation(request, queryset)
        self._review(
            request,
            queryset,
            "Approved",
            lambda pk: services.policy_request_approve(
                request_id=pk,
                reviewer=user,
                revision=str(request.POST.get(f"revision_{pk}", ""))[
                    : services.REVISION_MAX_LENGTH
                ],
            ),
        )
        return None

    def _approve_confirmation(
        self, request: HttpRequest, queryset: QuerySet[PolicyRequest]
    ) -> TemplateResponse:
        shown = []
        for pk in queryset.order_by("pk").values_list("pk", flat=True):
            try:
                policy_request = request_for_user(user=request.user, pk=pk, for_review=True)
            except Http404:
                continue
            changes = list(policy_request.changes.all())
            revision = revision_compute(changes, policy_request.expires_at)
            guardrails = changes_guardrails(role=policy_request.role, changes=changes)
            shown.append(
                {
                    "request": policy_request,
                    "changes": _changes_html(changes),
                    "guardrail_notes": [note for found in guardrails for note in found.notes],
                    "revision": revision,
                    "revision_short": revision_short(revision),
                }
            )
        context = {
            **self.admin_site.each_context(request),
            "title": "Approve these requests?",
            "opts": self.model._meta,
            "shown": shown,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request, "admin/requests_app/policyrequest/approve_confirmation.html", context
        )

    @admin.action(description="Reject the selected requests", permissions=["review"])
    def reject(self, request: HttpRequest, queryset: QuerySet[PolicyRequest]) -> None:
        user = cast(User, request.user)  # the admin site admits only signed-in users
        self._review(
            request,
            queryset,
            "Rejected",
            lambda pk: services.policy_request_reject(
                request_id=pk, reviewer=user, reason=ADMIN_REJECT_REASON
            ),
        )

    @admin.action(
        description="Revoke the access the selected requests granted", permissions=["review"]
    )
    def revoke_access(self, request: HttpRequest, queryset: QuerySet[PolicyRequest]) -> None:
        """End access grants at once, with their sessions, as on the role page."""
        user = cast(User, request.user)  # the admin site admits only signed-in users
        self._review(
            request,
            queryset,
            "Revoked the access of",
            lambda pk: services.access_grant_revoke(
                request_id=pk, actor=user, reason="Revoked in the admin."
            ),
        )

    def get_queryset(self, request: HttpRequest) -> QuerySet[PolicyRequest]:
        return super().get_queryset(request).annotate(approvals_given=Count("approvals"))

    @admin.display(description="Approvals")
    def approvals_shown(self, obj: PolicyRequest) -> str:
        given = getattr(obj, "approvals_given", None)
        if given is None:
            given = obj.approvals.count()
        return f"{given} of {obj.approvals_required}"

    @admin.display(description="Revision")
    @admin.display(description="approval policy")
    def approval_policy_shown(self, obj: PolicyRequest) -> str:
        requirement = obj.approval_requirement or {}
        return str(requirement.get("reason") or "Submitted before approval policies.")

    def revision_shown(self, obj: PolicyRequest) -> SafeString:
        return format_html('<code title="{}">{}</code>', obj.revision, revision_short(obj.revision))

    @admin.display(description="Changes")
    def changes_diff(self, obj: PolicyRequest) -> SafeString:
        """Each change with its status and, for policy documents, the diff the
        reviewer approves."""
        return _changes_html(obj.changes.all())


def _changes_html(changes: Iterable[Change]) -> SafeString:
    """Each change with its status and, for policy documents, its diff."""
    sections = []
    for change in changes:
        documents = change_document(change)
        lines = policy_diff(*documents, name="policy") if documents is not None else []
        diff = format_html_join(
            "\n",
            '<span class="diff-{}">{}</span>',
            ((line.kind if line.kind in DIFF_KINDS else "context", line.text) for line in lines),
        )
        sections.append(
            format_html(
                '<div class="change"><p><a href="{}">{}</a> ({}){}</p>{}{}</div>',
                reverse("admin:requests_app_change_change", args=[change.pk]),
                change_summary(change),
                change.get_status_display(),
                " — added for cross-account access" if change.automatic else "",
                format_html('<pre class="error">{}</pre>', change.error) if change.error else "",
                format_html("<pre>{}</pre>", diff) if lines else "",
            )
        )
    return format_html("{}", SafeString("".join(sections)))


@admin.register(Change)
class ChangeAdmin(ReadOnlyAdmin):
    list_display = ["id", "request_link", "type", "target_arn", "status", "applied_at"]
    list_filter = ["status", "type"]
    search_fields = ["target_arn"]
    list_select_related = ["request"]
    fields = [
        "request_link",
        "position",
        "type",
        "target_arn",
        "account_id",
        "status",
        "error",
        "applied_at",
        "payload_pretty",
        "previous_pretty",
    ]
    readonly_fields = ["request_link", "payload_pretty", "previous_pretty"]

    @admin.display(description="Request")
    def request_link(self, obj: Change) -> SafeString:
        return _request_link(obj.request)

    @admin.display(description="Payload")
    def payload_pretty(self, obj: Change) -> SafeString:
        return pretty_json(obj.payload)

    @admin.display(description="Previous value")
    def previous_pretty(self, obj: Change) -> SafeString:
        return pretty_json(obj.previous)


@admin.register(RequestEvent)
class RequestEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "request_link", "kind", "actor", "created_at"]
    list_filter = ["kind"]
    list_select_related = ["request", "actor"]
    fields = ["request_link", "kind", "actor", "message", "data_pretty", "created_at"]
    readonly_fields = ["request_link", "data_pretty", "created_at"]

    @admin.display(description="Request")
    def request_link(self, obj: RequestEvent) -> SafeString:
        return _request_link(obj.request)

    @admin.display(description="Data")
    def data_pretty(self, obj: RequestEvent) -> SafeString:
        return pretty_json(obj.data)


@admin.register(Comment)
class CommentAdmin(ReadOnlyAdmin):
    list_display = ["id", "request_link", "author", "created_at"]
    list_select_related = ["request", "author"]
    fields = ["request_link", "author", "body", "created_at"]
    readonly_fields = ["request_link", "created_at"]

    @admin.display(description="Request")
    def request_link(self, obj: Comment) -> SafeString:
        return _request_link(obj.request)


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    """The outbox of emails: what was sent, what is still trying, what gave up."""

    list_display = [
        "id",
        "request_link",
        "kind",
        "status",
        "attempts",
        "emails_sent",
        "created_at",
        "sent_at",
    ]
    list_filter = ["status", "kind"]
    list_select_related = ["request"]
    date_hierarchy = "created_at"
    fields = readonly_fields = (
        "request_link",
        "kind",
        "actor",
        "comment",
        "status",
        "attempts",
        "emails_sent",
        "last_error",
        "enqueued_at",
        "lease_owner",
        "heartbeat_at",
        "lease_expires_at",
        "created_at",
        "sent_at",
    )

    @admin.display(description="Request")
    def request_link(self, obj: Notification) -> SafeString:
        return _request_link(obj.request)


admin.site.unregister(Group)


@admin.register(Group)
class ReviewerGroupAdmin(RefusesDeletion, GroupAdmin):
    """Django's group admin, refusing to delete the last reviewer group an
    approval policy names."""

    def deletion_refusals(self, objs: Any) -> list[str]:
        return approval_policies_emptied_by(group_pks=[group.pk for group in objs])
