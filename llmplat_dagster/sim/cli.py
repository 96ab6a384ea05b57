"""``llmplat sim serve ...`` (one vLLM-compatible server) and ``llmplat sim fleet ...`` (all variants)."""

from __future__ import annotations

import logging
import socket
import sys

log = logging.getLogger("llmplat.sim")

EXIT_PREEMPTED = 3  # exit status after --sim-exit-after (a simulated spot preemption)
GRACE_S = 10  # seconds in-flight requests get after SIGTERM before the server stops anyway
USAGE = """usage: llmplat sim {serve,fleet} [options]

  serve   one vLLM-compatible server (vLLM's own flags plus --sim-*); `llmplat sim serve --help`
  fleet   one server per Deployment of a rendered overlay; `llmplat sim fleet --help`

examples:
  llmplat sim serve --model TheBloke/Mistral-7B-Instruct-v0.2-AWQ --served-model-name mistral-7b-awq --port 8001
  llmplat sim fleet --manifests manifests/overlays/dev --sim-time-scale 0.05 --endpoints-file endpoints.json

exit status: 0 stopped cleanly, 1 a fleet member died, 2 bad usage or input, 3 --sim-exit-after reached"""


def serve(argv: list[str]) -> int:
    """Run one simulator in the foreground until Ctrl-C / SIGTERM (or --sim-exit-after)."""
    import uvicorn

    from llmplat_dagster.sim.app import create_app
    from llmplat_dagster.sim.config import parse_args

    if any(a in ("-h", "--help") for a in argv):
        _help_parser().print_help()
        return 0
    config = parse_args(argv)  # a bad flag exits 2 with the usage line
    app = create_app(config)
    # SIGTERM must end the server even with requests in flight: they get GRACE_S to finish, then are cut.
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False, timeout_graceful_shutdown=GRACE_S)
    )
    state = app.state.sim
    state.on_exhausted = lambda: setattr(server, "should_exit", True)
    sock = socket.socket(socket.AF_INET6 if ":" in config.host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((config.host, config.port))
    except (OSError, OverflowError) as exc:
        sock.close()
        print(f"llmplat sim serve: cannot listen on --host {config.host} --port {config.port}: {exc}", file=sys.stderr)
        return 2
    # Configured only once the server really starts: a rejected flag leaves the caller's logging alone.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
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


def _help_parser():
    """`build_parser()` with a default on every option and examples: vLLM's own flags mean what they mean there."""
    from llmplat_dagster.cli import HelpFormatter
    from llmplat_dagster.sim.config import build_parser

    parser = build_parser()
    parser.formatter_class = HelpFormatter
    parser.epilog = (
        "examples:\n"
        "  llmplat sim serve --model TheBloke/Mistral-7B-Instruct-v0.2-AWQ --quantization awq \\\n"
        "      --served-model-name mistral-7b-awq --port 8001 --sim-time-scale 0.05\n"
        "  llmplat sim serve --port 0 --sim-error-rate 0.1 --sim-error-status 503 --sim-retry-after 2\n\n"
        "Unknown vLLM flags are accepted and ignored (a rendered Deployment's args run unchanged).\n"
        "exit status: 0 stopped, 2 bad usage or input (a flag out of range, a port that cannot be bound), "
        "3 --sim-exit-after reached"
    )
    for action in parser._actions:  # argparse keeps its actions there; the flags are vLLM's, not ours to re-help
        if action.help is None and action.option_strings:
            simulated = action.option_strings[0].startswith("--sim-")
            action.help = "simulator knob (llmplat_dagster/sim/README.md)" if simulated else "as in `vllm serve`"
    return parser


def main(argv: list[str]) -> int:
    """Entry for ``llmplat sim ...``; ``argv`` excludes the word ``sim``."""
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "serve":
        return serve(rest)
    if cmd == "fleet":
        from llmplat_dagster.sim.fleet import fleet_main

        return fleet_main(rest)
    print(f"llmplat sim: unknown command {cmd!r}; want serve or fleet\n\n{USAGE}", file=sys.stderr)
    return 2


__all__ = ["main", "serve"]
