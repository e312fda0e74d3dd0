"""The ``dcv`` command: the same checks as the Slack app, in a terminal.

Exit status (contract): 0 pass, 1 fail, 2 usage or input error (one line on stderr), 3 pending.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence

from bot import __version__
from bot.config import Settings, load_settings
from bot.engine import run_check
from bot.model import CheckError, CheckRequest, Diagnosis, InputError, Verdict

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"dcv: {message} (see dcv {self.prog.split()[-1]} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="dcv",
        description="Find out why a certificate's domain control validation (DCV) fails.",
        epilog="Exit status: 0 pass, 1 fail, 2 usage or input error, 3 pending (time will fix it).",
    )
    parser.add_argument("--version", action="version", version=f"dcv-bot {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    dns_cmd = commands.add_parser("dns", help="check a DNS validation record (TXT or CNAME)")
    dns_cmd.add_argument(
        "domain", metavar="DOMAIN", help="the certificate's domain, e.g. example.com or *.example.com"
    )
    dns_cmd.add_argument("value", metavar="VALUE", help="the record value the CA console shows")
    dns_cmd.add_argument(
        "--name",
        metavar="HOST",
        help="host record relative to DOMAIN (default _dnsauth; @ = DOMAIN; 'x.' = absolute)",
    )
    dns_cmd.add_argument("--type", dest="record_type", metavar="TXT|CNAME", default="TXT", help="record type")
    _common_options(dns_cmd)

    file_cmd = commands.add_parser(
        "file", help="check a file validation (http(s)://DOMAIN/.well-known/pki-validation/)"
    )
    file_cmd.add_argument("target", metavar="TARGET", help="a domain, or the file's full http(s) URL")
    file_cmd.add_argument("content", metavar="CONTENT", help="the file content the CA console shows")
    file_cmd.add_argument(
        "--path", metavar="PATH", help="file path (default /.well-known/pki-validation/fileauth.txt)"
    )
    _common_options(file_cmd)

    faq_cmd = commands.add_parser("faq", help="the CA FAQ entries the findings refer to")
    faq_cmd.add_argument("topic", metavar="TOPIC", nargs="?", help="e.g. propagation (default: every entry)")

    commands.add_parser(
        "serve", help="run the Slack app (Socket Mode with SLACK_APP_TOKEN, else HTTP on PORT)"
    )
    return parser


def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ca", metavar="CA", help="issuing CA (digicert, letsencrypt, alibaba, ...) or its CAA domain"
    )
    parser.add_argument("--json", action="store_true", help="print the diagnosis as one JSON object")
    parser.add_argument(
        "--wait",
        metavar="DURATION",
        type=_duration,
        help="re-check on the watch schedule until it passes or DURATION (90s, 30m, 2h) is up",
    )


def _duration(text: str) -> float:
    from bot.watches.schedule import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def request_from_args(args: argparse.Namespace, settings: Settings) -> CheckRequest:
    """Turn parsed arguments into a validated request (raises InputError)."""
    from bot import names

    if args.command == "dns":
        return names.dns_request(
            args.domain,
            args.value,
            host=args.name,
            record_type=args.record_type,
            ca=args.ca,
            allow_private=settings.allow_private,
        )
    return names.file_request(
        args.target, args.content, path=args.path, ca=args.ca, allow_private=settings.allow_private
    )


def print_diagnosis(diagnosis: Diagnosis, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(diagnosis.to_dict(), ensure_ascii=False, indent=2))
        return
    from bot.render.text import render_text

    print(render_text(diagnosis, color=sys.stdout.isatty()))


def print_faq(topic: str | None) -> int:
    """Print one FAQ entry, or all of them; an unknown topic is a usage error."""
    import textwrap

    from bot.remedies import faq_entries

    entries = faq_entries()
    if topic is not None and topic not in entries:
        print(f"dcv: no FAQ entry {topic!r}; entries: {', '.join(entries)}", file=sys.stderr)
        return EXIT_USAGE
    for entry in [entries[topic]] if topic else entries.values():
        print(f"{entry.title}  [{entry.key}]")
        print(textwrap.fill(entry.text, 100, initial_indent="  ", subsequent_indent="  "))
        print()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    if args.command == "faq":
        return print_faq(args.topic)
    try:
        settings = load_settings()
        if args.command == "serve":
            from bot.slack.runtime import serve

            return asyncio.run(serve(settings))
        request = request_from_args(args, settings)
    except InputError as exc:
        print(f"dcv: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if getattr(args, "wait", None):
            diagnosis = asyncio.run(_wait(request, settings, args.wait, as_json=args.json))
        else:
            diagnosis = asyncio.run(run_check(request, settings))
    except KeyboardInterrupt:
        print("dcv: interrupted", file=sys.stderr)
        return 130
    except CheckError as exc:
        print(f"dcv: {exc}", file=sys.stderr)
        return 1
    print_diagnosis(diagnosis, as_json=args.json)
    return diagnosis.verdict.exit_code


async def _wait(request: CheckRequest, settings: Settings, duration: float, *, as_json: bool) -> Diagnosis:
    """``--wait``: show the first result, then one line per re-check (stderr with ``--json``)."""
    from bot.watches.schedule import WatchSchedule
    from bot.watches.wait import wait_until_pass

    first = await run_check(request, settings)
    if not as_json and first.verdict is not Verdict.PASS:
        print_diagnosis(first, as_json=False)  # main() prints the final one
    stream = sys.stderr if as_json else sys.stdout

    async def check(req: CheckRequest) -> Diagnosis:
        return await run_check(req, settings)

    final = await wait_until_pass(
        request,
        check,
        WatchSchedule.from_settings(settings),
        duration,
        first=first,
        report=lambda line: print(f"dcv: {line}", file=stream, flush=True),
    )
    return final
