from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.services import account_add


class Command(BaseCommand):
    help = "Onboard an AWS account (or update the one with that id)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("account_id", help="12-digit AWS account id")
        parser.add_argument("--name", required=True, help="Friendly name shown everywhere")
        parser.add_argument("--environment", default="", help="Label such as prod or dev")
        parser.add_argument("--spoke-role-name", default="", help="Default: the setting")
        parser.add_argument("--external-id", default="", help="Default: the setting")
        parser.add_argument(
            "--regions", default="", help="Comma-separated regions (default: the setting)"
        )
        parser.add_argument(
            "--approvals",
            type=int,
            default=None,
            help="Distinct reviewers who must approve a change in this account (default 1)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        regions = [r.strip() for r in options["regions"].split(",") if r.strip()]
        try:
            account = account_add(
                account_id=options["account_id"],
                name=options["name"],
                environment=options["environment"],
                spoke_role_name=options["spoke_role_name"],
                external_id=options["external_id"],
                regions=regions,
                approvals_required=options["approvals"],
            )
        except ValidationError as exc:
            problems = "; ".join(
                f"{field}: {' '.join(errors)}" for field, errors in exc.message_dict.items()
            )
            raise CommandError(problems) from None
        self.stdout.write(
            self.style.SUCCESS(f"Onboarded {account}; spoke role {account.spoke_role_arn}")
        )
