"""`llmplat`: one console script, with subcommands per domain (manifests, promptsets, demo, sim).

Exit status, everywhere (`llmplat sim ...` included): 0 ok, 1 problems found (invalid manifests, drift, a failed
demo run), 2 bad usage or bad input (a flag, a file, a catalog); errors name the flag, file or line, never a
traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from llmplat_dagster.catalog import CatalogError, load_catalog

DEFAULT_TREE = Path("manifests")
OK, PROBLEMS, USAGE = 0, 1, 2

EXAMPLES = {
    "llmplat": """examples:
  llmplat manifests render                      write manifests/ from the packaged catalog
  llmplat manifests validate -o json            strict schemas for both overlays, as JSON
  llmplat manifests diff                        exit 1 and a unified diff when manifests/ drifted
  llmplat promptsets validate my-prompts.jsonl  every line checked, each bad one named file:line
  llmplat demo                                  the main job against a local simulator fleet
  llmplat sim serve --help                      the vLLM-compatible simulator

exit status: 0 ok, 1 problems found, 2 bad usage or input""",
    "render": """examples:
  llmplat manifests render
  llmplat manifests render --revision mistral-7b-awq=<40-hex sha> --out /tmp/manifests
  llmplat manifests render --stdout --overlay prod --image vllm/vllm-openai:v0.10.2""",
    "validate": """examples:
  llmplat manifests validate                    ./manifests if present, else the catalog's render
  llmplat manifests validate --dir /tmp/manifests --overlay prod --crd-dir ../shared/crds
  llmplat manifests validate --catalog my-catalog.yaml --k8s-version 1.30 -o json

exit status: 0 valid, 1 problems found, 2 bad usage or input""",
    "promptsets": """examples:
  llmplat promptsets validate canary
  llmplat promptsets validate my-prompts.jsonl --variant mistral-7b-fp16

exit status: 0 every line is good, 1 bad lines (each named file:line), 2 unreadable file or bad usage""",
    "diff": """examples:
  llmplat manifests diff
  llmplat manifests diff --dir /tmp/manifests --revision mistral-7b-awq=<sha> -o json

exit status: 0 in sync, 1 the tree differs from the catalog, 2 bad usage or input""",
}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llmplat-dagster")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _revision(item: str) -> tuple[str, str]:
    variant, sep, sha = item.partition("=")
    if not sep or not variant or not sha:
        raise argparse.ArgumentTypeError(f"takes VARIANT=REVISION, got {item!r}")
    return variant, sha


def _k8s_version(value: str) -> str:
    from llmplat_dagster.k8s.validate import check_k8s_version

    try:
        return check_k8s_version(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _catalog(args: argparse.Namespace):
    return load_catalog(args.catalog, revisions=dict(args.revision), image=args.image)


def _emit(args: argparse.Namespace, data: dict, text: str) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n" if args.output == "json" else text)


def _cmd_render(args: argparse.Namespace) -> int:
    from llmplat_dagster.k8s.render import render
    from llmplat_dagster.k8s.tree import dump, write_tree

    catalog = _catalog(args)
    if args.stdout:
        sys.stdout.write("---\n".join(dump(o) for o in render(catalog, args.overlay)))
        return OK
    files = write_tree(catalog, args.out)
    print(f"rendered {len(files)} files into {args.out}/ (overlays: dev, prod)")
    return OK


def _crds(args: argparse.Namespace):
    from llmplat_dagster.k8s.validate import CrdSchemas

    if args.crds_from_cluster:
        from kubernetes import client, config

        config.load_kube_config(context=args.context)
        return CrdSchemas.from_cluster(
            client.ApiClient(), ["scaledobjects.keda.sh", "servicemonitors.monitoring.coreos.com"]
        )
    flag = "--crd-dir" if args.crd_dir else "LLMPLAT_CRD_DIR"
    dirs = args.crd_dir or [d for d in os.environ.get("LLMPLAT_CRD_DIR", "").split(os.pathsep) if d]
    try:
        return CrdSchemas.from_dirs(dirs)
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(f"{flag}: {exc}") from None


class UsageError(ValueError):
    """Bad input the user can fix; the message names the flag or file. Exit status 2."""


def _sources(args: argparse.Namespace) -> tuple[bool, Path]:
    """Validate the tree (--dir, or ./manifests) or the catalog's render (--catalog, --revision, --image)?"""
    from_catalog = bool(args.catalog or args.revision or args.image)
    if args.dir is not None and from_catalog:
        raise UsageError(
            "--dir validates a rendered tree; --catalog/--revision/--image render one: pass one or the other"
        )
    if args.dir is not None and not args.dir.is_dir():
        raise UsageError(f"--dir {args.dir}: no such folder (render one with `llmplat manifests render --out DIR`)")
    use_tree = args.dir is not None or (not from_catalog and (DEFAULT_TREE / "overlays").is_dir())
    return use_tree, args.dir or DEFAULT_TREE


def _capacity(args: argparse.Namespace, objects: list, overlay: str) -> list[str]:
    """Do the overlay's model servers fit the GPU node pool the catalog describes (one server per node)?"""
    from llmplat_dagster.capacity import Pool, objects_capacity_problems

    pools = {n: Pool(n, p.min_nodes, p.max_nodes, p.autoscaler) for n, p in _catalog(args).node_pools.items()}
    return objects_capacity_problems(objects, pools, overlay)


def _cmd_validate(args: argparse.Namespace) -> int:
    from llmplat_dagster.k8s.render import render
    from llmplat_dagster.k8s.tree import build
    from llmplat_dagster.k8s.validate import UNCHECKED_HINT, Problem, failures, validate_objects

    use_tree, tree = _sources(args)
    crds = _crds(args)
    if args.strict is None:  # the flag wins; else the variable, read as the Dagster settings read it
        from llmplat_dagster.settings import env_flag

        strict = os.environ.get("LLMPLAT_STRICT_SCHEMAS", "")
        args.strict = bool(env_flag(strict, "LLMPLAT_STRICT_SCHEMAS"))
    overlays = ["dev", "prod"] if args.overlay == "all" else [args.overlay]
    report, lines, failed, unchecked = [], [], 0, 0
    for name in overlays:
        if use_tree:
            objects = build(tree / "overlays" / name)
            origin = f"{tree}/overlays/{name}"
        else:
            objects = render(_catalog(args), name)
            origin = f"catalog render ({name})"
        problems = validate_objects(objects, crds, args.k8s_version)
        problems += [Problem("Overlay", name, "replicas", m, origin) for m in _capacity(args, objects, name)]
        failing = failures(problems, args.strict)
        skipped = [p for p in problems if p.unchecked and p not in failing]
        status = f"{len(failing)} problem(s)" if failing else "ok"
        if skipped:
            status += f", {len(skipped)} custom resource(s) not schema-checked"
        lines.append(f"{origin}: {len(objects)} objects, Kubernetes {args.k8s_version} strict + CRD schemas: {status}")
        lines += [f"  {p}" for p in failing]
        lines += [f"  not schema-checked: {p.kind}/{p.name} (no CRD schema loaded)" for p in skipped]
        report.append(
            {
                "origin": origin,
                "objects": len(objects),
                "k8s_version": args.k8s_version,
                "problems": [vars(p) for p in failing],
                "not_schema_checked": [vars(p) for p in skipped],
            }
        )
        failed += len(failing)
        unchecked += len(skipped) + sum(p.unchecked for p in failing)
    if unchecked:
        lines.append(f"{unchecked} custom resource(s) not schema-checked: {UNCHECKED_HINT}")
    data = {"ok": not failed, "problems": failed, "not_schema_checked": unchecked, "strict": args.strict}
    _emit(args, {**data, "overlays": report}, "\n".join(lines) + "\n")
    return PROBLEMS if failed else OK


def _cmd_diff(args: argparse.Namespace) -> int:
    from llmplat_dagster.k8s.tree import diff_tree

    if not args.dir.is_dir():
        raise UsageError(
            f"--dir {args.dir}: no such folder (render it with `llmplat manifests render --out {args.dir}`)"
        )
    text = diff_tree(_catalog(args), args.dir)
    changed = sorted({line[4:].split("\t")[0] for line in text.splitlines() if line.startswith(("--- ", "+++ "))})
    data = {
        "in_sync": not text,
        "dir": str(args.dir),
        "changed": [c for c in changed if c != "/dev/null"],
        "diff": text,
    }
    if text:
        _emit(args, data, text)
        if args.output == "text":
            print(f"\n{args.dir}/ differs from the catalog; run `llmplat manifests render` and commit", file=sys.stderr)
        return PROBLEMS
    _emit(args, data, f"{args.dir}/ matches the catalog\n")
    return OK


def _cmd_promptset_validate(args: argparse.Namespace) -> int:
    from llmplat_dagster.evaluation.promptsets import PromptsetError, load_promptset

    try:
        promptset = load_promptset(args.source, variant=args.variant, strict=not args.lenient)
    except PromptsetError as exc:
        print(f"llmplat: {exc}", file=sys.stderr)
        return PROBLEMS if exc.issues else USAGE
    print(f"{promptset.source}: {len(promptset.prompts)} prompt(s) ok, version {promptset.version}")
    for issue in promptset.issues:
        print(f"  skipped: {issue}")
    return PROBLEMS if promptset.issues else OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from llmplat_dagster.demo import run_demo

    return run_demo()


def _parser() -> argparse.ArgumentParser:
    def sub_parser(sub, name: str, help: str, examples: str | None = None) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help,
            description=help,
            epilog=EXAMPLES.get(examples or name),
            formatter_class=HelpFormatter,
        )

    parser = argparse.ArgumentParser(
        prog="llmplat", description=__doc__.split("\n\n")[0], epilog=EXAMPLES["llmplat"], formatter_class=HelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"llmplat {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{manifests,promptsets,demo,sim}")
    manifests = sub_parser(sub, "manifests", "render, validate and diff the Kubernetes manifests", "llmplat")
    msub = manifests.add_subparsers(dest="action", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--catalog", type=Path, help="variant catalog YAML (default: the packaged catalog.yaml)")
        p.add_argument(
            "--revision", action="append", default=[], type=_revision, metavar="VARIANT=SHA",
            help="pin a variant's model revision; repeat for several",
        )  # fmt: skip
        p.add_argument("--image", help="override every variant's vLLM image (a pinned tag or digest)")

    def output(p: argparse.ArgumentParser) -> None:
        p.add_argument("-o", "--output", choices=["text", "json"], default="text", help="report format")

    render = sub_parser(msub, "render", "write the kustomize tree (base/, overlays/dev, overlays/prod)")
    common(render)
    render.add_argument("--out", type=Path, default=DEFAULT_TREE, help="folder to write the tree into")
    render.add_argument("--stdout", action="store_true", help="print one overlay as multi-document YAML instead")
    render.add_argument("--overlay", choices=["dev", "prod"], default="dev", help="overlay printed by --stdout")
    render.set_defaults(func=_cmd_render)

    validate = sub_parser(msub, "validate", "schema-validate every object (strict) and every custom resource")
    common(validate)
    validate.add_argument(
        "--dir", type=Path, help="kustomize tree to validate (default: ./manifests if present, else the catalog)"
    )
    validate.add_argument("--overlay", choices=["dev", "prod", "all"], default="all", help="overlay(s) to validate")
    validate.add_argument(
        "--k8s-version", type=_k8s_version, default=None, help="Kubernetes version of the schemas (default: 1.31)"
    )
    validate.add_argument(
        "--crd-dir",
        action="append",
        default=[],
        help="folder of CRD YAML; repeat for several (default: $LLMPLAT_CRD_DIR)",
    )
    validate.add_argument("--crds-from-cluster", action="store_true", help="read the CRDs from the kubeconfig cluster")
    validate.add_argument("--context", help="kubeconfig context for --crds-from-cluster (default: the current one)")
    validate.add_argument(
        "--strict",
        action="store_true",
        default=None,
        help="fail on custom resources that no CRD schema checks (default: $LLMPLAT_STRICT_SCHEMAS, else off)",
    )
    output(validate)
    validate.set_defaults(func=_cmd_validate)

    diff = sub_parser(msub, "diff", "show how the committed tree differs from what the catalog renders")
    common(diff)
    diff.add_argument("--dir", type=Path, default=DEFAULT_TREE, help="the committed kustomize tree")
    output(diff)
    diff.set_defaults(func=_cmd_diff)

    promptsets = sub_parser(sub, "promptsets", "check promptset files before a canary reads them", "promptsets")
    psub = promptsets.add_subparsers(dest="action", required=True)
    pvalidate = sub_parser(psub, "validate", "check every line of a promptset (JSONL)", "promptsets")
    pvalidate.add_argument("source", help="packaged name (canary, ...), local JSONL path or s3://bucket/key")
    pvalidate.add_argument("--variant", help="also check every prompt fits this variant's max_model_len")
    pvalidate.add_argument("--lenient", action="store_true", help="skip bad lines (as the canary's lenient mode)")
    pvalidate.set_defaults(func=_cmd_promptset_validate)

    demo = sub_parser(sub, "demo", "run the main job locally against a simulator fleet (exit 1 if the run fails)")
    demo.set_defaults(func=_cmd_demo)

    sub.add_parser("sim", help="the vLLM-compatible simulator: `llmplat sim serve|fleet --help`", add_help=False)
    return parser


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option says its default (unless its help already does); examples are kept as written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "(default" in text or action.default is argparse.SUPPRESS or not action.option_strings:
            return text
        if action.default in (None, False, []):
            return f"{text} (default: not set)" if action.default is not False else f"{text} (default: off)"
        shown = action.default if not isinstance(action.default, Path) else f"./{action.default}"
        return f"{text} (default: {shown})"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["sim"]:
        from llmplat_dagster.sim.cli import main as sim_main

        return sim_main(argv[1:])
    args = _parser().parse_args(argv)  # a bad flag exits 2 with the usage line
    if getattr(args, "k8s_version", "") is None:
        from llmplat_dagster.k8s.validate import DEFAULT_K8S_VERSION

        args.k8s_version = DEFAULT_K8S_VERSION
    try:
        return args.func(args)
    except (CatalogError, UsageError, FileNotFoundError, ValueError) as exc:
        print(f"llmplat: {exc}", file=sys.stderr)
        return USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
