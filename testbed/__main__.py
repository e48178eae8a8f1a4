"""CLI for the local test bed: ``python -m testbed up|down|status|kubeconfig|provision``.

The Makefile targets call this, so developers and the pytest plugin share one launcher.
"""

from __future__ import annotations

import argparse
import sys
import time

from testbed.cluster import (
    LocalCluster,
    TestbedError,
    install_crds,
    install_fake_nodes,
)


def main(argv: list[str] | None = None) -> int:
    """Parse the subcommand and run it; exit status 1 with a readable message on failure."""
    parser = argparse.ArgumentParser(prog="python -m testbed", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start (or reuse) the cluster; prints the kubeconfig path")
    up.add_argument("--timeout", type=float, default=180, help="seconds to wait for readiness")
    down = sub.add_parser("down", help="stop the cluster and delete its files")
    down.add_argument(
        "--force", action="store_true", help="stop it even while test sessions hold leases"
    )
    sub.add_parser("status", help="print whether the cluster is up and healthy")
    sub.add_parser("kubeconfig", help="print the kubeconfig path")
    prov = sub.add_parser(
        "provision", help="install the third-party CRDs (and fake nodes) into ANY cluster"
    )
    prov.add_argument("--kubeconfig", required=True)
    prov.add_argument(
        "--fake-nodes",
        action="store_true",
        help="also register the kwok fake nodes (needs a kwok controller in that cluster)",
    )
    args = parser.parse_args(argv)
    cluster = LocalCluster()
    try:
        if args.command == "up":
            start = time.monotonic()
            with cluster.lock():
                kubeconfig = cluster.up(timeout=args.timeout)
            print(f"cluster ready in {time.monotonic() - start:.1f}s", file=sys.stderr)
            print(f"export KUBECONFIG={kubeconfig}", file=sys.stderr)
            print(kubeconfig)
        elif args.command == "down":
            with cluster.lock():
                users = cluster.live_users()
                if users and not args.force:
                    print(
                        f"error: test sessions {sorted(users)} use the cluster; "
                        "retry when they finish or pass --force",
                        file=sys.stderr,
                    )
                    return 1
                cluster.down()
            print(f"cluster {cluster.name} removed", file=sys.stderr)
        elif args.command == "status":
            print(cluster.status())
            return 0 if cluster.healthy() else 3
        elif args.command == "kubeconfig":
            print(cluster.kubeconfig)
        elif args.command == "provision":
            if args.fake_nodes:
                install_fake_nodes(args.kubeconfig)
            for name in install_crds(args.kubeconfig):
                print(f"crd/{name} established", file=sys.stderr)
    except TestbedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
