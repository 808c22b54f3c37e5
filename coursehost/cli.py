"""``python -m coursehost.cli …``: what ``./course`` calls for the engine and for clean-up."""

from __future__ import annotations

import argparse
import sys

from . import engine
from helpers.errors import CourseError, EngineError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./course", description="The Docker course's engine and clean-up.")
    sub = parser.add_subparsers(dest="command", required=True)
    eng = sub.add_parser("engine", help="the course's own Docker engine and registry")
    eng.add_argument("action", choices=["start", "stop", "status", "ensure", "cli-path"])
    clean = sub.add_parser("clean", help="remove every object of every run of the course on the daemon")
    clean.add_argument("--dead", action="store_true",
                       help="only the objects of runs whose kernel died (live learners' runs stay)")
    clean.add_argument("--older-than", type=float, metavar="HOURS", default=24.0,
                       help="with --dead: also runs of other machines or unknown owners whose newest "
                            "object is older than this (default 24; 0 never)")
    args = parser.parse_args(argv)
    try:
        if args.command == "engine" and args.action == "cli-path":
            # the folder of the engine lane's docker CLI, and its config folder with buildx
            from . import debian
            try:
                folder = debian.program("engine", "docker").parent
                debian.cli_config()
            except debian.AptFailed as err:
                raise EngineError(f"{err}.") from None
            print(folder)
        elif args.command == "engine" and args.action == "stop":
            engine.stop()
        elif args.command == "engine" and args.action == "status":
            for key, value in engine.status().items():
                print(f"{key:24} {value}")
        elif args.command == "engine":
            _, host = engine.ensure() if args.action == "ensure" else (engine.start(), f"unix://{engine.socket_path()}")
            print(host)
        elif args.command == "clean" and args.dead:
            from helpers.connection import connect
            from helpers.reaper import reap
            max_age = args.older_than * 3600 if args.older_than > 0 else None
            print(reap(connect(), max_age=max_age).summary())
        else:
            from helpers.connection import connect
            from helpers.naming import cleanup_all
            from helpers.network import release_swarm
            client = connect()
            removed = cleanup_all(client)
            swarm = "" if release_swarm(client) else "; the course's swarm stays: a run still uses it"
            print(", ".join(f"{n} {kind}" for kind, n in removed.items()) + " removed" + swarm)
    except CourseError as err:
        print(f"[course] {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
