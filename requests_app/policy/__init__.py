"""The IAM policy language, with no database and no Django: generation from
intents, the curated permission map, lint, diffs, template rendering, IAM's
limits and partitions, ARN patterns, and the one index over the IAM reference
that generation and lint share."""
