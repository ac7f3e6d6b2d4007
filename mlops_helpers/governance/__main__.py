"""``python -m mlops_helpers.governance audit|lineage|card|reproduce``: the governance controls, for CI or a cron job.

``audit`` exits 1 when an alias was moved outside the tools (and, with ``--strict``, on gaps in the history too);
``reproduce`` exits 1 when the data changed or the predictions differ. Each prints one line per finding.
"""

from __future__ import annotations

import argparse
import json
import sys

from mlops_helpers.names import MODEL_NAME


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlops_helpers.governance", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("audit", "replay the audit trail and compare it with the registry"),
        ("lineage", "print the lineage of a version as a Mermaid flowchart"),
        ("card", "write the model card of a version to the workspace and log it on its run"),
        ("reproduce", "retrain a pipeline version and compare its predictions"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--model-name", default=MODEL_NAME)
        p.add_argument("--tracking-uri", help="MLflow tracking/registry URI (default: the course workspace)")
        if name == "audit":
            p.add_argument("--since", type=int, default=0, help="report gaps only after this event number")
            p.add_argument("--strict", action="store_true", help="fail on gaps in the history too")
        else:
            p.add_argument("--version", default="champion", help="a version number or an alias (default: champion)")
    args = parser.parse_args(argv)

    from mlops_helpers.workspace import connect

    connect(args.tracking_uri)
    return COMMANDS[args.command](args)


def audit(args) -> int:
    from mlops_helpers.registry import Registry

    check = Registry(args.model_name).check(since=args.since)
    for finding in check.findings:
        print(f"{finding.kind}: {finding.message()}")
    print(f"audit: {check.events} events, {len(check.unrecorded)} unrecorded moves, {len(check.gaps)} gaps")
    return 1 if check.unrecorded or (args.strict and check.gaps) else 0


def lineage(args) -> int:
    from mlops_helpers.governance.lineage import lineage as build

    print(build(args.model_name, args.version).to_mermaid())
    return 0


def card(args) -> int:
    from mlops_helpers.governance.card import model_card, save_model_card

    print(save_model_card(args.model_name, args.version, model_card(args.model_name, args.version)))
    return 0


def reproduce(args) -> int:
    from mlops_helpers.governance.reproducibility import DataChanged
    from mlops_helpers.governance.reproducibility import reproduce as rebuild

    try:
        result = rebuild(args.model_name, args.version)
    except DataChanged as refusal:
        print(f"reproduce: REFUSED, {refusal}", file=sys.stderr)
        return 1
    print(json.dumps(result.summary(), default=str))
    return 0 if result.identical else 1


COMMANDS = {"audit": audit, "lineage": lineage, "card": card, "reproduce": reproduce}

if __name__ == "__main__":
    sys.exit(main())
