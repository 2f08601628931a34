from django.urls import path

from accounts import views

urlpatterns = [
    path("dashboard/", views.dashboard, name="dashboard"),
    path("accounts/", views.account_list, name="account_list"),
    path("accounts/<str:account_id>/", views.account_detail, name="account_detail"),
    path("accounts/<str:account_id>/sync/", views.account_sync, name="account_sync"),
    path(
        "accounts/<str:account_id>/roles/<str:role_name>/",
        views.role_detail,
        name="role_detail",
    ),
    path(
        "accounts/<str:account_id>/roles/<str:role_name>/inline/",
        views.role_part,
        {"tab": "inline"},
        name="role_inline",
    ),
    path(
        "accounts/<str:account_id>/roles/<str:role_name>/managed/",
        views.role_part,
        {"tab": "managed"},
        name="role_managed",
    ),
    path(
        "accounts/<str:account_id>/roles/<str:role_name>/trust/",
        views.role_part,
        {"tab": "trust"},
        name="role_trust",
    ),
    path(
        "accounts/<str:account_id>/roles/<str:role_name>/tags/",
        views.role_part,
        {"tab": "tags"},
        name="role_tags",
    ),
    path(
        "accounts/<str:account_id>/roles/<str:role_name>/boundary/",
        views.role_part,
        {"tab": "boundary"},
        name="role_boundary",
    ),
    path(
        "accounts/<str:account_id>/roles/<str:role_name>/history/",
        views.role_history,
        name="role_history",
    ),
    path(
        "accounts/<str:account_id>/roles/<str:role_name>/refresh/",
        views.role_refresh,
        name="role_refresh",
    ),
    path(
        "accounts/<str:account_id>/users/<str:user_name>/",
        views.iam_user_detail,
        name="iam_user_detail",
    ),
    path(
        "accounts/<str:account_id>/groups/<str:group_name>/",
        views.group_detail,
        name="group_detail",
    ),
    path("roles/", views.role_list, name="role_list"),
    path("users/", views.iam_user_list, name="iam_user_list"),
    path("databases/<int:pk>/", views.database_detail, name="database_detail"),
    path("resources/", views.resource_list, name="resource_list"),
    path("resources/<int:pk>/", views.resource_detail, name="resource_detail"),
    path("policies/<int:pk>/", views.policy_detail, name="policy_detail"),
    path("policies/", views.policy_list, name="policy_list"),
    path("policies/export.<str:fmt>", views.policy_export, name="policy_export"),
    path("search/", views.inventory_search, name="inventory_search"),
]
