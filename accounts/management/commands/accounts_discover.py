from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.fetch import describe_error
from accounts.models import AwsAccount
from accounts.services import account_add, organization_accounts


class Command(BaseCommand):
    help = "List the accounts of the hub's AWS Organization; --add onboards the new active ones."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--add", action="store_true", help="Onboard every active account not yet onboarded"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            found = organization_accounts()
        except (ClientError, BotoCoreError) as exc:
            raise CommandError(f"Could not list the organization: {describe_error(exc)}") from None
        onboarded = set(AwsAccount.objects.values_list("account_id", flat=True))
        self.stdout.write(f"{'ACCOUNT':<14}{'STATUS':<12}{'ONBOARDED':<11}NAME")
        for item in found:
            mark = "yes" if item["account_id"] in onboarded else "no"
            self.stdout.write(
                f"{item['account_id']:<14}{item['status']:<12}{mark:<11}{item['name']}"
            )
        if not options["add"]:
            return
        added = 0
        for item in found:
            if item["account_id"] in onboarded or item["status"] != "ACTIVE":
                continue
            account_add(account_id=item["account_id"], name=item["name"])
            added += 1
        self.stdout.write(self.style.SUCCESS(f"Onboarded {added} account(s)."))
