"""Run SageMaker processing and training jobs for real, from their Create* request.

moto records a job and reports it Completed at once without running anything. Here
the job runs as SageMaker would run it: S3 inputs staged into an /opt/ml-shaped tree,
the container's config files written, the entrypoint (Processing) or the built-in
XGBoost algorithm (Training) executed, outputs uploaded, logs sent to CloudWatch Logs,
and the true status and failure reason kept for Describe* to report.
A Processing container runs in the image environment (runtime/image_env.py: the XGBoost
3.2-0 image's Python and pins), with the job's Environment, no network under network
isolation, otherwise the local AWS as far as its VpcConfig reaches (runtime/vpc.py), and
FRAUDLAB_OPT_ML / SAGEMAKER_BASE_DIR saying where its /opt/ml is offline.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from botocore.exceptions import ClientError

from localaws.clients import ClientSource
from localaws.iam.authorizer import RoleNotAssumable
from localaws.runtime import image_env, vpc
from localaws.runtime.container import ContainerFailed, start_serving_container
from localaws.runtime.endpoints import EndpointError, model_container
from localaws.runtime.reaper import REAPER, kill_group
from localaws.s3 import download_keys, list_keys, read_object, split_uri, upload_bytes, upload_dir
from localaws.sagemaker import transform

OPT_ML = "/opt/ml"


@dataclass
class TuningOutcome:
    """What a tuning job's children came to (describe.py shapes it for Describe*)."""
    statuses: list[str]  # each child's end status
    best: tuple[str, str, dict[str, str], float] | None = None  # (child, its ARN, its hyperparameters, objective value)


@dataclass
class JobState:
    kind: str  # "processing" | "training" | "tuning" | "transform"
    status: str = "InProgress"
    failure_reason: str | None = None
    started: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    ended: datetime | None = None
    final_metrics: list[dict[str, Any]] = field(default_factory=list)
    tuning: TuningOutcome | None = None  # a tuning job's, once its children have ended
    done: threading.Event = field(default_factory=threading.Event)
    stop_requested: threading.Event = field(default_factory=threading.Event)
    processes: list[subprocess.Popen] = field(default_factory=list)  # a processing job's containers
    spec: dict[str, Any] = field(default_factory=dict)  # the Create* request
    # SecondaryStatusTransitions, as DescribeTrainingJob lists them (processing jobs keep them too)
    transitions: list[dict[str, Any]] = field(default_factory=list)

    def enter(self, status: str, message: str) -> None:
        """A new secondary status; the previous one ends now."""
        now = datetime.now(timezone.utc)
        if self.transitions:
            self.transitions[-1]["EndTime"] = now
        self.transitions.append({"Status": status, "StartTime": now, "StatusMessage": message})

    def entered(self, status: str) -> datetime | None:
        """When the job entered `status` (e.g. TrainingStartTime: Downloading), if it did."""
        return next((t["StartTime"] for t in self.transitions if t["Status"] == status), None)


class JobFailed(Exception):
    """The job's own code or data failed; str() becomes the job's FailureReason."""


class JobStopped(Exception):
    """Raised inside a runner once a stop was requested, so nothing more is uploaded."""


class JobNotRunning(Exception):
    """Stop* of a job that has already ended (SageMaker answers ValidationException)."""


class JobRunner:
    """Runs jobs in background threads against the local AWS at `endpoint_url`."""

    def __init__(
        self,
        session_factory: Callable[[], ClientSource],
        as_role: Callable[[str], tuple[ClientSource, dict[str, str]]],
        workdir: Path | None = None,
    ) -> None:
        self._session_factory = session_factory  # SageMaker's own calls (Describe*, child jobs)
        # What SageMaker does with the job's role: its clients, and its containers' environment.
        self._as_role = as_role
        self._workdir = workdir or Path(tempfile.mkdtemp(prefix="localaws-jobs-"))
        self.jobs: dict[str, JobState] = {}

    def assume(self, kind: str, spec: dict[str, Any]) -> None:
        """SageMaker's check at Create*: the job's role (a tuning job's definition's) must trust
        it, or RoleNotAssumable. A transform job runs as its model's role, assumed when it runs."""
        role_arn = (spec.get("TrainingJobDefinition") or {}).get("RoleArn") if kind == "tuning" else spec.get("RoleArn")
        if kind != "transform" and role_arn:  # without one, moto's own validation answers
            self._as_role(role_arn)

    def _network_environment(self, role: ClientSource, environment: dict[str, str], vpc_config: dict | None) -> dict[str, str]:
        """How a container with network access reaches AWS: as its role, through its VPC's
        endpoints only (SageMaker places the VPC's ENIs with the role)."""
        try:
            return vpc.network_environment(environment, self._session_factory().client("ec2"), vpc_config, role_ec2=role.client("ec2"))
        except vpc.VpcConfigError as error:  # a refusal of the role's Describe* included
            raise JobFailed(f"ClientError: {error}") from None

    def start(self, kind: str, name: str, spec: dict[str, Any]) -> None:
        state = self.jobs[name] = JobState(kind, spec=spec)
        state.enter("Starting", "Preparing the instances for the job")
        run = {"processing": self._run_processing, "training": self._run_training, "tuning": self._run_tuning, "transform": self._run_transform}[kind]
        threading.Thread(target=self._supervise, args=(state, run, name, spec), name=f"job-{name}", daemon=True).start()

    def stop(self, name: str) -> None:
        """Stop* as SageMaker does it: Stopping at once, Stopped when the job has let go.

        Processing containers are killed; a training job (in-process XGBoost) finishes its
        current run and is then reported Stopped, its outputs not uploaded; a tuning job
        starts no more children and stops those running."""
        state = self.jobs[name]
        if state.done.is_set():
            raise JobNotRunning(f"The job {name} is not in progress (status {state.status})")
        state.stop_requested.set()
        state.status = "Stopping"
        for process in state.processes:
            kill_group(process.pid)  # the container's whole process group
        if state.kind == "tuning":  # its children are named after it
            for child, child_state in list(self.jobs.items()):
                if child.startswith(f"{name}-") and child_state.kind == "training":
                    with contextlib.suppress(JobNotRunning):  # it may end meanwhile
                        self.stop(child)

    def wait(self, name: str, timeout: float = 600) -> JobState:
        state = self.jobs[name]
        state.done.wait(timeout)
        return state

    def _supervise(self, state: JobState, run: Callable, name: str, spec: dict[str, Any]) -> None:
        try:
            metrics = run(name, spec, state) or []
            if state.stop_requested.is_set():
                raise JobStopped
            state.final_metrics, state.status = metrics, "Completed"
        except JobStopped:
            state.status = "Stopped"
        except RoleNotAssumable as error:
            state.status, state.failure_reason = "Failed", f"ClientError: {error}"
        except JobFailed as error:  # killed on request is not a failure of the job
            state.status, state.failure_reason = ("Stopped", None) if state.stop_requested.is_set() else ("Failed", str(error))
        except Exception as error:  # noqa: BLE001 - any crash must end as a Failed job, not a hang
            traceback.print_exc()
            state.status, state.failure_reason = "Failed", f"InternalServerError: local runner: {error}"
        finally:
            shutil.rmtree(self._workdir / name, ignore_errors=True)  # staged data, failed or not
            state.enter(state.status, {"Completed": "Job completed", "Stopped": "Job stopped"}.get(state.status, state.failure_reason or ""))
            state.ended = state.transitions[-1]["EndTime"] = state.transitions[-1]["StartTime"]
            state.done.set()

    # --- batch transform ----------------------------------------------------------------

    def _run_transform(self, name: str, spec: dict[str, Any], state: JobState) -> list:
        """The model's serving container started as for an endpoint, every input object sent
        through it with SageMaker's batch semantics (transform.py), the .out objects written."""
        session = self._session_factory()
        try:
            settings = transform.Settings.from_request(spec)
            model, container = model_container(session.client("sagemaker"), spec["ModelName"])
        except (transform.TransformError, EndpointError) as error:
            raise JobFailed(f"ClientError: {error}") from None
        source = spec["TransformInput"]["DataSource"]["S3DataSource"]
        if source.get("S3DataType", "S3Prefix") != "S3Prefix":
            raise JobFailed("ClientError: the local AWS reads S3Prefix inputs only (no manifest files)")
        role, role_environment = self._as_role(model["ExecutionRoleArn"])
        s3 = role.client("s3")
        bucket, prefix = split_uri(source["S3Uri"])
        with _refused_as("Failed to download data"):
            keys = list_keys(s3, bucket, prefix)
            archive = read_object(s3, container["ModelDataUrl"])
        if not keys:
            raise JobFailed(f"ClientError: no objects under {source['S3Uri']}")
        state.enter("Starting", "Starting the model's serving container")
        isolated = model.get("EnableNetworkIsolation", False)
        try:
            serving = start_serving_container(
                f"transform/{name}", archive, container.get("Environment", {}),
                network_isolation=isolated,
                network_environment=None if isolated else self._network_environment(role, role_environment, model.get("VpcConfig")),
            )
        except ContainerFailed as error:
            raise JobFailed(f"ClientError: {error}") from None
        output = spec["TransformOutput"]
        out_bucket, out_prefix = split_uri(output["S3OutputPath"])
        extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": output["KmsKeyId"]} if output.get("KmsKeyId") else {}
        headers = {"Content-Type": settings.content_type, "Accept": settings.accept}
        try:
            state.enter("Transforming", f"Transforming {len(keys)} input object(s)")
            for key in keys:
                if state.stop_requested.is_set():
                    raise JobStopped
                with _refused_as("Failed to download data"):
                    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                result = transform.transform_object(body, settings, lambda payload: serving.request("POST", "/invocations", payload, headers)[:2])
                relative = key[len(prefix):].lstrip("/") or key.rsplit("/", 1)[-1]
                with _refused_as("Failed to upload output data"):
                    s3.put_object(Bucket=out_bucket, Key=f"{out_prefix.rstrip('/')}/{relative}.out", Body=result, **extra)
        except transform.TransformError as error:
            raise JobFailed(f"ClientError: {error} (logs: /aws/sagemaker/TransformJobs {name}/*)") from None
        finally:
            _JobLogs(role, "/aws/sagemaker/TransformJobs", name).put(f"{name}/{spec['TransformResources']['InstanceType']}", serving.log_tail())
            serving.stop()
        return []

    # --- processing -------------------------------------------------------------------

    def _run_processing(self, name: str, spec: dict[str, Any], state: JobState) -> list:
        role, role_environment = self._as_role(spec["RoleArn"])
        hosts = [f"algo-{i + 1}" for i in range(spec["ProcessingResources"]["ClusterConfig"]["InstanceCount"])]
        app = spec["AppSpecification"]
        command = [*app.get("ContainerEntrypoint", []), *app.get("ContainerArguments", [])]
        if not command:
            raise JobFailed("ClientError: the local AWS needs AppSpecification.ContainerEntrypoint")
        logs = _JobLogs(role, "/aws/sagemaker/ProcessingJobs", name)
        state.enter("Downloading", "Downloading input data")
        roots = []
        for index, host in enumerate(hosts):
            root = self._workdir / name / host / "opt/ml"
            roots.append(root)
            for item in spec.get("ProcessingInputs", []):
                s3_input = item["S3Input"]
                sharded = s3_input.get("S3DataDistributionType") == "ShardedByS3Key"
                _download_prefix(role, s3_input["S3Uri"], _local(root, s3_input["LocalPath"]), (index, len(hosts)) if sharded else (0, 1))
            for item in spec.get("ProcessingOutputConfig", {}).get("Outputs", []):
                _local(root, item["S3Output"]["LocalPath"]).mkdir(parents=True, exist_ok=True)
            config = root / "config"
            config.mkdir(parents=True, exist_ok=True)
            (config / "processingjobconfig.json").write_text(json.dumps(spec, default=str))
            (config / "resourceconfig.json").write_text(json.dumps({"current_host": host, "hosts": hosts}))
        # Hosts run side by side, as on a cluster.
        environment = dict(spec.get("Environment", {}))
        network = spec.get("NetworkConfig", {})
        isolated = network.get("EnableNetworkIsolation", False)
        if not isolated:
            environment.update(self._network_environment(role, role_environment, network.get("VpcConfig")))
        sandbox = image_env.network_sandbox()[0] if isolated else []
        state.enter("Processing", "Processing job in progress")
        runs = [_start_process([*sandbox, *_container_command(command, root)], root, environment) for root in roots]
        state.processes = runs
        if state.stop_requested.is_set():  # stopped while its inputs were staged
            for process in runs:
                kill_group(process.pid)
        timeout = spec.get("StoppingCondition", {}).get("MaxRuntimeInSeconds", 86400)
        failures = []
        for host, process in zip(hosts, runs):
            try:
                output, _ = process.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                output, _ = process.communicate()
                failures.append(f"{host}: MaxRuntimeInSeconds ({timeout}) exceeded")
            else:
                if process.returncode != 0:
                    last = [line for line in output.splitlines() if line.strip()][-1:] or ["(no output)"]
                    failures.append(f"{host}: exit code {process.returncode}: {last[0]}")
            logs.put(f"{name}/{host}", output)
            kill_group(process.pid)  # anything the job left running in its group
            REAPER.release(process.pid)
        if state.stop_requested.is_set():
            raise JobStopped
        if failures:
            raise JobFailed("AlgorithmError: " + "; ".join(failures) + f" (logs: /aws/sagemaker/ProcessingJobs {name}/*)")
        state.enter("Uploading", "Uploading generated output data")
        for root in roots:
            for item in spec.get("ProcessingOutputConfig", {}).get("Outputs", []):
                with _refused_as("Failed to upload output data"):
                    upload_dir(role.client("s3"), _local(root, item["S3Output"]["LocalPath"]), item["S3Output"]["S3Uri"])
        return []

    # --- training ---------------------------------------------------------------------

    def _run_training(self, name: str, spec: dict[str, Any], state: JobState) -> list[dict[str, Any]]:
        from localaws.sagemaker import builtin_xgboost  # imports xgboost only when a job trains

        role, _ = self._as_role(spec["RoleArn"])
        image = spec["AlgorithmSpecification"].get("TrainingImage", "")
        if "sagemaker-xgboost" not in image:
            raise JobFailed(f"ClientError: the local AWS runs only the built-in XGBoost algorithm, not {image}")
        root = self._workdir / name / "opt/ml"
        state.enter("Downloading", "Downloading input data")
        channels = {}
        for channel in spec.get("InputDataConfig", []):
            target = root / "input/data" / channel["ChannelName"]
            _download_prefix(role, channel["DataSource"]["S3DataSource"]["S3Uri"], target, (0, 1))
            channels[channel["ChannelName"]] = target
        checkpoint = spec.get("CheckpointConfig", {}).get("S3Uri")
        checkpoint_dir = root.parent / "checkpoints"
        if checkpoint:
            _download_prefix(role, checkpoint, checkpoint_dir, (0, 1), required=False)  # first run: none yet
        logs = _JobLogs(role, "/aws/sagemaker/TrainingJobs", name)
        log_lines: list[str] = []
        state.enter("Training", "Training image download completed. Training in progress.")
        try:
            result = builtin_xgboost.train(
                spec.get("HyperParameters", {}), channels, root / "model", checkpoint_dir if checkpoint else None, log_lines.append
            )
        except builtin_xgboost.AlgorithmInputError as error:
            raise JobFailed(f"ClientError: {error}") from None
        finally:
            logs.put(f"{name}/algo-1", "\n".join(log_lines))
        if state.stop_requested.is_set():
            raise JobStopped
        state.enter("Uploading", "Uploading generated training model")
        output = spec["OutputDataConfig"]["S3OutputPath"].rstrip("/") + f"/{name}/output/model.tar.gz"
        with _refused_as("Failed to upload output data"):
            if checkpoint:
                upload_dir(role.client("s3"), checkpoint_dir, checkpoint)
            upload_bytes(role.client("s3"), output, _tar_gz(root / "model"))
        return [{"MetricName": k, "Value": v, "Timestamp": datetime.now(timezone.utc)} for k, v in result.items()]


    # --- tuning -----------------------------------------------------------------------

    def _run_tuning(self, name: str, spec: dict[str, Any], state: JobState) -> list:
        """Train MaxNumberOfTrainingJobs children through the API, MaxParallel at a time.

        Offline the ranges are sampled at random (seeded by the job name): Bayesian
        optimization is AWS's service-side logic; the API, limits, child jobs and
        best-job selection behave as on SageMaker."""
        config, definition = spec["HyperParameterTuningJobConfig"], spec["TrainingJobDefinition"]
        objective = config["HyperParameterTuningJobObjective"]
        limits = config["ResourceLimits"]
        sagemaker = self._session_factory().client("sagemaker")
        rng = random.Random(name)
        children: dict[str, dict[str, str]] = {}
        for index in range(limits["MaxNumberOfTrainingJobs"]):
            if state.stop_requested.is_set():
                raise JobStopped
            tuned = _sample(config.get("ParameterRanges", {}), rng)
            child = f"{name}-{index + 1:03d}-{rng.getrandbits(32):08x}"
            children[child] = tuned
            sagemaker.create_training_job(
                TrainingJobName=child,
                HyperParameters={**definition.get("StaticHyperParameters", {}), **tuned},
                **{k: v for k, v in definition.items() if k not in ("StaticHyperParameters", "DefinitionName", "TuningObjective", "HyperParameterRanges")},
            )
            running = [c for c in children if not self.jobs[c].done.is_set()]
            if len(running) >= limits.get("MaxParallelTrainingJobs", 1):
                self.wait(running[0])
        for child in children:
            self.wait(child)
        scored = []
        for child, tuned in children.items():
            metrics = {m["MetricName"]: m["Value"] for m in self.jobs[child].final_metrics}
            if objective["MetricName"] in metrics:
                scored.append((metrics[objective["MetricName"]], child, tuned))
        state.tuning = TuningOutcome([self.jobs[c].status for c in children])
        if not scored:
            raise JobFailed(f"ClientError: no training job reported {objective['MetricName']}")
        value, best, tuned = (max if objective["Type"] == "Maximize" else min)(scored)
        state.tuning.best = (best, sagemaker.describe_training_job(TrainingJobName=best)["TrainingJobArn"], tuned, value)
        return []


def _sample(ranges: dict[str, Any], rng: random.Random) -> dict[str, str]:
    """One point of the search space, as hyperparameter strings."""
    point = {}
    for item in ranges.get("ContinuousParameterRanges", []):
        low, high = float(item["MinValue"]), float(item["MaxValue"])
        if item.get("ScalingType") in ("Logarithmic", "ReverseLogarithmic"):
            point[item["Name"]] = f"{math.exp(rng.uniform(math.log(low), math.log(high))):.6g}"
        else:
            point[item["Name"]] = f"{rng.uniform(low, high):.6g}"
    for item in ranges.get("IntegerParameterRanges", []):
        point[item["Name"]] = str(rng.randint(int(item["MinValue"]), int(item["MaxValue"])))
    for item in ranges.get("CategoricalParameterRanges", []):
        point[item["Name"]] = rng.choice(item["Values"])
    return point


def _local(root: Path, container_path: str) -> Path:
    """Map a container path (/opt/ml/...) into this job's scratch tree."""
    if not container_path.startswith(OPT_ML):
        raise JobFailed(f"ClientError: LocalPath {container_path} must be under {OPT_ML}")
    return root / container_path[len(OPT_ML):].lstrip("/")


def _container_command(command: list[str], root: Path) -> list[str]:
    rewritten = [str(root) + part[len(OPT_ML):] if part.startswith(OPT_ML) else part for part in command]
    if rewritten[0] in ("python", "python3"):
        rewritten[0] = str(image_env.image_python())  # the image's python3 is /opt/venv/bin/python3 on PATH
    return rewritten


def _start_process(command: list[str], root: Path, environment: dict[str, str]) -> subprocess.Popen:
    # A container has only what the image and its job give it: nothing of this process's environment.
    env = image_env.container_environment(environment, opt_ml=root)
    process = subprocess.Popen(
        command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    REAPER.watch(process.pid)  # killed with the local AWS, however that ends
    return process


def _download_prefix(session: ClientSource, uri: str, target: Path, shard: tuple[int, int], required: bool = True) -> None:
    """Every object under `uri` into `target` (host `shard[0]` of `shard[1]` gets every n-th key)."""
    s3 = session.client("s3")
    with _refused_as("Failed to download data"):
        keys = list_keys(s3, *split_uri(uri))
        if not keys and required:
            raise JobFailed(f"ClientError: no objects under {uri}")
        index, count = shard
        download_keys(s3, uri, keys[index::count], target)


def _tar_gz(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in sorted(directory.iterdir()):
            archive.add(path, arcname=path.name)
    return buffer.getvalue()


@contextlib.contextmanager
def _refused_as(doing: str):
    """A refusal of what SageMaker does as the job's role fails the job, with AWS's words."""
    try:
        yield
    except ClientError as error:
        detail = error.response.get("Error", {})
        raise JobFailed(f"ClientError: {doing}. {detail.get('Code')}: {detail.get('Message')}") from None


class _JobLogs:
    """Job output to CloudWatch Logs, where the console's "View logs" link points."""

    def __init__(self, session: ClientSource, group: str, job: str) -> None:
        self.logs, self.group, self.job = session.client("logs"), group, job
        with self._unless_refused():
            try:
                self.logs.create_log_group(logGroupName=group)
            except self.logs.exceptions.ResourceAlreadyExistsException:
                pass

    def put(self, stream: str, text: str) -> None:
        now = int(time.time() * 1000)
        events = [{"timestamp": now, "message": line} for line in text.splitlines()[-10_000:] if line]
        with self._unless_refused():
            self.logs.create_log_stream(logGroupName=self.group, logStreamName=stream)
            if events:
                self.logs.put_log_events(logGroupName=self.group, logStreamName=stream, logEvents=events)

    @contextlib.contextmanager
    def _unless_refused(self):
        """A role without log permissions gets a job without logs, not a failed job (SageMaker)."""
        try:
            yield
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "AccessDeniedException":
                raise
            print(f"localaws: no logs for {self.job}: {error.response['Error']['Message']}", file=sys.stderr)
