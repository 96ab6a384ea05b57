"""``llmplat sim serve ...`` (one vLLM-compatible server) and ``llmplat sim fleet ...`` (all variants)."""

from __future__ import annotations

import logging
import socket
import sys

log = logging.getLogger("llmplat.sim")

EXIT_PREEMPTED = 3  # exit status after --sim-exit-after (a simulated spot preemption)


def serve(argv: list[str]) -> int:
    """Run one simulator in the foreground until Ctrl-C / SIGTERM (or --sim-exit-after)."""
    import uvicorn

    from llmplat_dagster.sim.app import create_app
    from llmplat_dagster.sim.config import parse_args

    if any(a in ("-h", "--help") for a in argv):
        from llmplat_dagster.sim.config import build_parser

        build_parser().print_help()
        return 0
    config = parse_args(argv)
    app = create_app(config)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False))
    state = app.state.sim
    state.on_exhausted = lambda: setattr(server, "should_exit", True)
    sock = socket.socket(socket.AF_INET6 if ":" in config.host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((config.host, config.port))
    log.warning(
        "llmplat-sim serving %s as %s on http://%s:%s (time scale %s)",
        config.model,
        ",".join(config.served_names),
        config.host,
        sock.getsockname()[1],
        config.time_scale,
    )
    server.run(sockets=[sock])
    return EXIT_PREEMPTED if state.gone else 0


def main(argv: list[str]) -> int:
    """Entry for ``llmplat sim ...``; ``argv`` excludes the word ``sim``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: llmplat sim {serve,fleet} [options]  (see `llmplat sim serve --help`)")
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "serve":
        return serve(rest)
    if cmd == "fleet":
        from llmplat_dagster.sim.fleet import fleet_main

        return fleet_main(rest)
    print(f"llmplat sim: unknown command {cmd!r}; want serve or fleet", file=sys.stderr)
    return 2


__all__ = ["main", "serve"]
