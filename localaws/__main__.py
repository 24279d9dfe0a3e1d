"""`python -m localaws lab|serve|deploy|destroy`: the offline lab in one command, a local
AWS to work against, and `cdk deploy` / `cdk destroy` against it."""
from __future__ import annotations

import argparse
import errno
import json
import os
import signal
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Where `make local-up` (run in the directory it is called from) finds the env file.
STATE_DIR = Path(".localaws")


def serve(port: int, firehose_failures: float = 0.0) -> int:
    """Start the local AWS with the stacks deployed; write .localaws/env; serve until stopped."""
    from localaws.cloudformation.deploy import deploy_assembly
    from localaws.cloudformation.synth import assembly_for
    from localaws.server import LocalAws

    assembly = assembly_for()
    local = LocalAws(port=port).start()
    local.faults.firehose_failure_fraction = firehose_failures
    for report in deploy_assembly(assembly, local.session()):
        print(report.summary(), flush=True)
    STATE_DIR.mkdir(exist_ok=True)
    env_file = STATE_DIR / "env"
    env_file.write_text("".join(f"export {k}={v}\n" for k, v in local.environment().items()))
    print(f"✓ local AWS at {local.endpoint_url}; `source {env_file}` to use it", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    local.stop()
    env_file.unlink(missing_ok=True)
    return 0


def deploy(context: list[str]) -> int:
    """`cdk deploy --all` against the running local AWS (AWS_ENDPOINT_URL), with -c key=value."""
    import boto3

    from localaws.cloudformation.deploy import deploy_assembly
    from localaws.cloudformation.synth import assembly_for

    overrides = {}
    for item in context:
        key, separator, value = item.partition("=")
        if not separator:
            raise SystemExit(f"-c takes key=value, got {item!r}")
        overrides[key] = value
    if "AWS_ENDPOINT_URL" not in os.environ:
        raise SystemExit("AWS_ENDPOINT_URL is not set: `make local-up` and `source .localaws/env` first")
    # boto3 reads AWS_DEFAULT_REGION; the AWS docs (and .localaws/env) also set AWS_REGION.
    session = boto3.Session(region_name=os.environ.get("AWS_REGION") or None)
    session.client("sts").get_caller_identity()  # the local AWS answers: before a synthesis, not after it
    assembly = assembly_for(overrides)
    for report in deploy_assembly(assembly, session):
        print(report.summary(), flush=True)
    return 0


def explain(error: Exception) -> str | None:
    """One actionable line for a condition a user can meet, else None (a bug: traceback)."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, NoRegionError

    from localaws.cloudformation.deploy import DeployError
    from localaws.cloudformation.destroy import DestroyError
    from localaws.cloudformation.synth import SynthError

    if isinstance(error, SynthError):
        return str(error)
    if isinstance(error, DeployError):
        return f"deploy failed: {error}"
    if isinstance(error, DestroyError):
        return f"destroy failed: {error}"
    if isinstance(error, EndpointConnectionError):
        return f"no local AWS at {error.kwargs.get('endpoint_url')}: start one with `make local-up`, then `source .localaws/env`"
    if isinstance(error, (NoRegionError, NoCredentialsError)):
        return f"{error}: `source .localaws/env` (written by `make local-up`) sets the local AWS's region and keys"
    if isinstance(error, ClientError):
        return f"{error.operation_name}: {error.response['Error'].get('Message', error)}"
    if isinstance(error, OSError) and error.errno == errno.EADDRINUSE:
        return "the port is in use: pick another with --port, or stop what listens on it (`make local-down`)"
    return None


def destroy() -> int:
    """`cdk destroy --all` against the running local AWS: every stack of the lab, newest first."""
    import boto3

    from localaws.cloudformation.destroy import destroy_stacks

    if "AWS_ENDPOINT_URL" not in os.environ:
        raise SystemExit("AWS_ENDPOINT_URL is not set: `source .localaws/env` first (on AWS: npx cdk destroy --all)")
    prefix = os.environ.get("FRAUDLAB_STACK_PREFIX") or json.loads((ROOT / "cdk.json").read_text())["context"]["fraudlab:stackPrefix"]
    destroyed = destroy_stacks(boto3.Session(region_name=os.environ.get("AWS_REGION") or None), prefix)
    print(f"✓ destroyed {', '.join(destroyed) or 'nothing: no stack of the lab is deployed'}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        return run(argv)
    except Exception as error:  # noqa: BLE001 - only explained conditions are one line
        message = explain(error)
        if message is None:
            raise
        print(f"✗ {message}", file=sys.stderr)
        return 1


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localaws", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    lab = commands.add_parser("lab", help="run every lab step offline and print a summary")
    lab.add_argument("--size", type=int, default=100_000, help="transactions in the lab (default 100000)")
    lab.add_argument("--workdir", type=Path, default=ROOT, help="where build/ (results, report) goes (default: the repo)")
    up = commands.add_parser("serve", help="run a local AWS with the lab's stacks deployed")
    up.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    up.add_argument(
        "--firehose-failures", type=float, default=0.0, metavar="FRACTION",
        help="fail this fraction of PutRecordBatch records (0-1), as Firehose does under throttling (default 0)",
    )
    cdk = commands.add_parser("deploy", help="deploy the stacks into the running local AWS, like cdk deploy --all")
    cdk.add_argument("-c", "--context", action="append", default=[], help="fraudlab:key=value, as with cdk -c")
    commands.add_parser("destroy", help="delete every stack of the lab from the running local AWS, like cdk destroy --all")
    args = parser.parse_args(argv)
    if args.command == "deploy":
        return deploy(args.context)
    if args.command == "destroy":
        return destroy()
    if args.command == "lab":
        if args.size < 100:
            parser.error("--size must be at least 100 transactions")
        # No CDK in this process: a synthesis runs in a child of its own (synth.assembly_for),
        # whose Node runtime and memory end with it.
        from localaws.offline_lab import INTERRUPTED_EXIT, run_lab

        code = run_lab(args.size, args.workdir.resolve())
        if code == INTERRUPTED_EXIT:
            # Everything is stopped and reported: leave at once, past any exit hook the
            # Ctrl-C interrupted (a synthesis child got it too and has ended).
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        return code
    if not 0 <= args.firehose_failures <= 1:
        parser.error("--firehose-failures takes a fraction between 0 and 1")
    return serve(args.port, args.firehose_failures)


if __name__ == "__main__":
    sys.exit(main())
