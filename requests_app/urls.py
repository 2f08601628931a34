from django.urls import path

from requests_app import editor_views, lifecycle_views, views

urlpatterns = [
    path("requests/", views.request_list, name="request_list"),
    path("requests/<int:pk>/", views.request_detail, name="request_detail"),
    path("requests/<int:pk>/approve/", views.request_approve, name="request_approve"),
    path("requests/<int:pk>/reject/", views.request_reject, name="request_reject"),
    path("requests/<int:pk>/retry/", views.request_retry, name="request_retry"),
    path("requests/<int:pk>/cancel/", views.request_cancel, name="request_cancel"),
    path("requests/<int:pk>/comment/", views.request_comment, name="request_comment"),
    path("requests/<int:pk>/extend/", views.request_extend, name="request_extend"),
    path(
        "requests/<int:pk>/changes/<int:change_id>/edit/",
        views.change_edit,
        name="change_edit",
    ),
    path("requests/review/", views.request_queue, name="request_queue"),
    path(
        "accounts/<str:account_id>/roles/<str:role_name>/history/<int:version_id>/restore/",
        views.role_version_restore,
        name="role_version_restore",
    ),
    path("requests/new/", views.request_new, name="request_new"),
    path("requests/access/new/", views.access_request_new, name="access_request_new"),
    path("requests/<int:pk>/grant/revoke/", views.access_grant_revoke, name="access_grant_revoke"),
    path(
        "requests/new/<int:role_id>/permissions/",
        views.request_permissions,
        name="request_permissions",
    ),
    path(
        "requests/new/<int:role_id>/permissions/add/",
        views.request_permission_add,
        name="request_permission_add",
    ),
    path(
        "requests/new/<int:role_id>/permissions/template/",
        views.request_template_add,
        name="request_template_add",
    ),
    path(
        "requests/new/<int:role_id>/permissions/<int:index>/remove/",
        views.request_permission_remove,
        name="request_permission_remove",
    ),
    path(
        "requests/new/<int:role_id>/permissions/resources/",
        views.request_resources,
        name="request_resources",
    ),
    path(
        "requests/new/<int:role_id>/permissions/json/",
        views.request_editor,
        name="request_editor",
    ),
    path(
        "requests/new/<int:role_id>/permissions/json/lint/",
        views.request_editor_lint,
        name="request_editor_lint",
    ),
    path(
        "requests/new/<int:role_id>/permissions/json/discard/",
        views.request_editor_discard,
        name="request_editor_discard",
    ),
    path(
        "requests/new/<int:role_id>/denied/<int:call_id>/",
        views.request_denied_call,
        name="request_denied_call",
    ),
    path("requests/new/<int:role_id>/review/", views.request_review, name="request_review"),
    path("policy/actions/", editor_views.policy_actions, name="policy_actions"),
    path(
        "resources/<int:pk>/edit/", editor_views.resource_policy_edit, name="resource_policy_edit"
    ),
    path(
        "resources/<int:pk>/request-access/",
        editor_views.resource_request_access,
        name="resource_request_access",
    ),
    path("policies/<int:pk>/edit/", editor_views.managed_policy_edit, name="managed_policy_edit"),
    path(
        "accounts/<str:account_id>/roles/<str:role_name>/edit/collected/",
        editor_views.role_edits_collected,
        name="role_edits_collected",
    ),
    path(
        "accounts/<str:account_id>/roles/<str:role_name>/edit/<str:part>/",
        editor_views.role_part_edit,
        name="role_part_edit",
    ),
    path("roles/new/", lifecycle_views.role_create, name="role_create"),
    path(
        "accounts/<str:account_id>/roles/<str:role_name>/clone/",
        lifecycle_views.role_clone,
        name="role_clone",
    ),
    path(
        "accounts/<str:account_id>/roles/<str:role_name>/delete/",
        lifecycle_views.role_delete,
        name="role_delete",
    ),
    path(
        "accounts/<str:account_id>/roles/<str:role_name>/settings/",
        lifecycle_views.role_settings_edit,
        name="role_settings_edit",
    ),
]
