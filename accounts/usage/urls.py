from django.urls import path

from accounts.usage import views

urlpatterns = [
    path(
        "accounts/<str:account_id>/roles/<str:role_name>/usage/",
        views.role_usage,
        name="role_usage",
    ),
]
