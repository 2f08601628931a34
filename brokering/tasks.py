"""django-q2 entry points for brokering."""

from brokering import services
from iamportal import jobs


@jobs.tracked("brokering.cli_challenges_prune")
def cli_challenges_prune_task() -> int:
    return services.cli_challenges_prune()
