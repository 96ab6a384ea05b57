"""`llmplat`: one console script, with subcommands per domain (manifests, sim)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from llmplat_dagster.catalog import CatalogError, load_catalog

DEFAULT_TREE = Path("manifests")


def _overrides(values: list[str]) -> dict[str, str]:
    revisions = {}
    for item in values:
        variant, sep, sha = item.partition("=")
        if not sep or not variant or not sha:
            raise SystemExit(f"llmplat: --revision takes VARIANT=REVISION, got {item!r}")
        revisions[variant] = sha
    return revisions


def _catalog(args: argparse.Namespace):
    return load_catalog(args.catalog, revisions=_overrides(args.revision), image=args.image)


def _cmd_render(args: argparse.Namespace) -> int:
    from llmplat_dagster.k8s.render import render
    from llmplat_dagster.k8s.tree import dump, write_tree

    catalog = _catalog(args)
    if args.stdout:
        sys.stdout.write("---\n".join(dump(o) for o in render(catalog, args.overlay)))
        return 0
    files = write_tree(catalog, args.out)
    print(f"rendered {len(files)} files into {args.out}/ (overlays: dev, prod)")
    return 0


def _crds(args: argparse.Namespace):
    from llmplat_dagster.k8s.validate import CrdSchemas

    dirs = args.crd_dir or [d for d in os.environ.get("LLMPLAT_CRD_DIR", "").split(os.pathsep) if d]
    if args.crds_from_cluster:
        from kubernetes import client, config

        config.load_kube_config(context=args.context)
        return CrdSchemas.from_cluster(
            client.ApiClient(), ["scaledobjects.keda.sh", "servicemonitors.monitoring.coreos.com"]
        )
    return CrdSchemas.from_dirs(dirs)


def _cmd_validate(args: argparse.Namespace) -> int:
    from llmplat_dagster.k8s.render import render
    from llmplat_dagster.k8s.tree import build
    from llmplat_dagster.k8s.validate import UNCHECKED_HINT, failures, validate_objects

    crds = _crds(args)
    overlays = ["dev", "prod"] if args.overlay == "all" else [args.overlay]
    use_tree = args.dir is not None or (DEFAULT_TREE / "overlays").is_dir()
    tree = args.dir or DEFAULT_TREE
    failed = unchecked = 0
    for name in overlays:
        if use_tree:
            objects = build(tree / "overlays" / name)
            origin = f"{tree}/overlays/{name}"
        else:
            objects = render(_catalog(args), name)
            origin = f"catalog render ({name})"
        problems = validate_objects(objects, crds, args.k8s_version)
        failing = failures(problems, args.strict)
        skipped = [p for p in problems if p.unchecked and p not in failing]
        status = f"{len(failing)} problem(s)" if failing else "ok"
        if skipped:
            status += f", {len(skipped)} custom resource(s) not schema-checked"
        print(f"{origin}: {len(objects)} objects, Kubernetes {args.k8s_version} strict + CRD schemas: {status}")
        for p in failing:
            print(f"  {p}")
        for p in skipped:
            print(f"  not schema-checked: {p.kind}/{p.name} (no CRD schema loaded)")
        failed += len(failing)
        unchecked += len(skipped) + sum(p.unchecked for p in failing)
    if unchecked:
        print(f"{unchecked} custom resource(s) without a CRD schema: {UNCHECKED_HINT}")
    return 1 if failed else 0


def _cmd_diff(args: argparse.Namespace) -> int:
    from llmplat_dagster.k8s.tree import diff_tree

    text = diff_tree(_catalog(args), args.dir)
    if text:
        sys.stdout.write(text)
        print(f"\n{args.dir}/ differs from the catalog; run `llmplat manifests render` and commit", file=sys.stderr)
        return 1
    print(f"{args.dir}/ matches the catalog")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from llmplat_dagster.demo import run_demo

    return run_demo()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmplat", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    manifests = sub.add_parser("manifests", help="render, validate and diff the Kubernetes manifests")
    msub = manifests.add_subparsers(dest="action", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--catalog", type=Path, help="variant catalog YAML (default: the packaged one)")
        p.add_argument("--revision", action="append", default=[], metavar="VARIANT=SHA", help="pin a model revision")
        p.add_argument("--image", help="override every variant's vLLM image (pinned tag or digest)")

    render = msub.add_parser("render", help="write the kustomize tree (base/, overlays/dev, overlays/prod)")
    common(render)
    render.add_argument("--out", type=Path, default=DEFAULT_TREE)
    render.add_argument("--stdout", action="store_true", help="print one overlay as multi-document YAML instead")
    render.add_argument("--overlay", choices=["dev", "prod"], default="dev")
    render.set_defaults(func=_cmd_render)

    validate = msub.add_parser("validate", help="schema-validate every object (strict) and every custom resource")
    common(validate)
    validate.add_argument("--dir", type=Path, help="kustomize tree to validate (default: ./manifests if present)")
    validate.add_argument("--overlay", choices=["dev", "prod", "all"], default="all")
    validate.add_argument("--k8s-version", default=None, help="Kubernetes version of the schemas (default 1.31)")
    validate.add_argument("--crd-dir", action="append", default=[], help="folder of CRD YAML (env LLMPLAT_CRD_DIR)")
    validate.add_argument("--crds-from-cluster", action="store_true", help="read the CRDs from the kubeconfig cluster")
    validate.add_argument("--context", help="kubeconfig context for --crds-from-cluster")
    validate.add_argument(
        "--strict",
        action="store_true",
        default=os.environ.get("LLMPLAT_STRICT_SCHEMAS", "").lower() in ("1", "true", "yes"),
        help="fail on custom resources that no CRD schema checks (env LLMPLAT_STRICT_SCHEMAS=1)",
    )
    validate.set_defaults(func=_cmd_validate)

    diff = msub.add_parser("diff", help="show how the committed tree differs from what the catalog renders")
    common(diff)
    diff.add_argument("--dir", type=Path, default=DEFAULT_TREE)
    diff.set_defaults(func=_cmd_diff)

    demo = sub.add_parser("demo", help="run the main job locally on the embedded default")
    demo.set_defaults(func=_cmd_demo)

    sub.add_parser("sim", help="the vLLM-compatible simulator: `llmplat sim serve|fleet --help`", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["sim"]:
        from llmplat_dagster.sim.cli import main as sim_main

        return sim_main(argv[1:])
    args = _parser().parse_args(argv)
    if getattr(args, "k8s_version", "") is None:
        from llmplat_dagster.k8s.validate import DEFAULT_K8S_VERSION

        args.k8s_version = DEFAULT_K8S_VERSION
    try:
        return args.func(args)
    except CatalogError as exc:
        print(f"llmplat: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as exc:
        print(f"llmplat: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
