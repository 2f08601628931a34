"""Benchmark: the CPU time of linting pathological policies.

Wildcards such as `*a*b*c*...` make a naive matcher (a regex translation, or
a recursive glob) try every way of splitting a name between the stars. This
prints the CPU time of linting documents of about 80 kB built that way, one
per element the linter matches patterns in (Action, NotAction, a service
prefix, Resource, condition keys), and of a document with a thousand such
actions. No database and no AWS are needed.

Target: each under 100 ms of CPU (the reference is loaded beforehand, as in a
running web process).

Run: .venv/bin/python bench/lint.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import string
import sys
import time
from pathlib import Path
from typing import Any


def _starred(size: int) -> str:
    letters = string.ascii_lowercase
    return ("*" + "*".join(letters[i % len(letters)] for i in range(size // 2)) + "*")[:size]


def cases(size: int) -> dict[str, Any]:
    star = _starred(size)
    return {
        "Action s3:*a*b*c*...": {"Effect": "Allow", "Action": "s3:" + star, "Resource": "*"},
        "Action *:*a*b*c*...": {"Effect": "Allow", "Action": "*:" + star, "Resource": "*"},
        "service prefix": {"Effect": "Allow", "Action": star + ":Get*", "Resource": "*"},
        "NotAction": {"Effect": "Allow", "NotAction": "iam:" + star, "Resource": "*"},
        "Resource (2 kB ARN)": {
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::" + star[:2000],
        },
        "condition key": {
            "Effect": "Allow",
            "Action": "ec2:StartInstances",
            "Resource": "*",
            "Condition": {"StringLike": {"ec2:ResourceTag/" + star: "x"}},
        },
        "1,000 starred actions": {
            "Effect": "Allow",
            "Action": [f"s3:*{c}*{c}*{c}*{c}*" for c in string.ascii_lowercase] * 40,
            "Resource": "*",
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size", type=int, default=80_000, help="pattern size (default 80000)")
    parser.add_argument(
        "--repeat", type=int, default=3, help="keep the fastest of this many runs (default 3)"
    )
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from requests_app.policy import arns, lint, reference

    reference.iam_reference()  # loaded once per process, at the first lint
    worst = 0.0
    for name, statement in cases(args.size).items():
        document = {"Version": "2012-10-17", "Statement": statement}
        times = []
        for _ in range(args.repeat):
            # Parsed ARNs and expanded patterns are cached: measure cold runs.
            reference.expand.cache_clear()
            lint._sensitive.cache_clear()
            lint._targets.cache_clear()
            arns.policy_arn.cache_clear()
            started = time.process_time()
            findings = lint.policy_lint(document)
            times.append(time.process_time() - started)
        best = min(times) * 1000
        worst = max(worst, best)
        codes = ", ".join(sorted({f.code for f in findings}))
        print(f"{name:24} {best:7.1f} ms CPU  ({codes})")
    print(f"slowest: {worst:.1f} ms CPU (target: under 100 ms)")


if __name__ == "__main__":
    main()
