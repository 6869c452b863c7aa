#!/usr/bin/env python3
"""Renders alerts/gatewayz.rules.yml for a Prometheus whose gatewayz jobs are named otherwise,
or whose runbooks live elsewhere. The shipped file is the default rendering (job=~"gatewayz.*",
runbooks under docs/runbooks/), so it loads as is; this writes a copy with another job regex
and runbook base, to stdout or to --output.

    python3 alerts/render.py --job 'llm-gw|llm-gw-.+' \\
        --runbook-base https://git.example.com/ops/gatewayz/-/blob/main/docs/runbooks/ \\
        > /etc/prometheus/gatewayz.rules.yml

Plain text replacement, made safe by the shipped file's shape: every selector carries the
exact matcher `job=~"gatewayz.*"` and every expression is a YAML block scalar (no quoting to
break), which tests/dashboards.rs checks with a PromQL parser, rendering a copy with this
script too. The regex is PromQL's (RE2, fully anchored), written as you would in a selector
without the quotes; it is escaped into the PromQL string here.
"""
import argparse
import pathlib
import re
import sys

RULES = pathlib.Path(__file__).resolve().parent / "gatewayz.rules.yml"
DEFAULT_JOB = "gatewayz.*"
DEFAULT_RUNBOOK_BASE = "docs/runbooks/"


def promql_string(value):
    """`value` as the inside of a double-quoted PromQL string."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def render(text, job, runbook_base):
    matcher = f'job=~"{promql_string(DEFAULT_JOB)}"'
    runbook = f'runbook_url: "{DEFAULT_RUNBOOK_BASE}'
    if matcher not in text or runbook not in text:
        sys.exit(f"{RULES} no longer holds {matcher} and {runbook}...: update alerts/render.py")
    base = runbook_base if runbook_base.endswith("/") else runbook_base + "/"
    base = base.replace("\\", "\\\\").replace('"', '\\"')  # inside a YAML double-quoted string
    text = text.replace(matcher, f'job=~"{promql_string(job)}"')
    return text.replace(runbook, f'runbook_url: "{base}')


def main():
    args = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    args.add_argument("--job", default=DEFAULT_JOB,
                      help=f"regex of the job label of the gateway's scrape jobs (default {DEFAULT_JOB})")
    args.add_argument("--runbook-base", default=DEFAULT_RUNBOOK_BASE,
                      help="URL (or path) the runbook file names are appended to "
                           f"(default {DEFAULT_RUNBOOK_BASE})")
    args.add_argument("--output", "-o", type=pathlib.Path, help="write here instead of stdout")
    opts = args.parse_args()
    try:
        re.compile(opts.job)
    except re.error as e:
        sys.exit(f"--job {opts.job!r} is not a regex: {e}")
    out = render(RULES.read_text(), opts.job, opts.runbook_base)
    if opts.output:
        opts.output.write_text(out)
    else:
        sys.stdout.write(out)


if __name__ == "__main__":
    main()
