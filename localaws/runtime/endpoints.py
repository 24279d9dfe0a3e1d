"""Real-time endpoints, offline: one serving container per variant, plus data capture.

moto stores endpoints (and reports them InService) but answers InvokeEndpoint with b"body".
Here each variant's model is resolved the way SageMaker does (endpoint -> endpoint config
-> model -> container or model package -> model.tar.gz) and served by the image's own
serving stack (runtime/container.py) with the Model's Environment and network isolation.
As SageMaker routes production traffic: a request goes to one production variant, chosen
at random in proportion to the variants' weights (UpdateEndpointWeightsAndCapacities
changes them in place), or to the variant the request names (TargetVariant); each shadow
variant (ShadowProductionVariants) gets a copy, answered in the background, its answer
kept from the caller. Every variant publishes its own metrics; requests and answers are
captured per variant to the endpoint config's S3 destination in SageMaker's JSONL format
and layout (runtime/capture.py).
"""
from __future__ import annotations

import http.client
import random
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Callable

from botocore.exceptions import BotoCoreError, ClientError

from localaws.clients import ClientSource
from localaws.iam.authorizer import RoleNotAssumable
from localaws.runtime import vpc
from localaws.runtime.capture import FLUSH_SECONDS, Capture
from localaws.runtime.container import ContainerFailed, ServingContainer, start_serving_container, stop_containers
from localaws.runtime.endpoint_telemetry import EndpointTelemetry
from localaws.s3 import read_object

TELEMETRY_SECONDS = 1.0  # how often metrics and log lines are published


class EndpointError(Exception):
    """The endpoint cannot serve (missing, model not loadable); str() is the reason."""


def route(hosted: HostedEndpoint, target_variant: str = "") -> HostedVariant:
    """The production variant a request goes to: the one it names, else one at random in
    proportion to the weights (SageMaker's traffic distribution)."""
    if target_variant:
        named = next((v for v in hosted.variants if v.name == target_variant), None)
        if named is None:
            raise EndpointError(f"Variant {target_variant} not found for endpoint {hosted.name}.")
        return named
    weights = [max(v.weight, 0.0) for v in hosted.variants]
    if not any(weights):
        raise EndpointError(f"Endpoint {hosted.name} has no production variant with a traffic weight above 0.")
    return random.choices(hosted.variants, weights)[0]


@dataclass
class HostedVariant:
    name: str
    container: ServingContainer
    telemetry: EndpointTelemetry
    weight: float  # production traffic share, relative to the other production variants'
    # Clients as its model's execution role, asked for at each use: a role session lasts an
    # hour and an endpoint longer (the local AWS's as_role hands out a fresh one in time).
    role: Callable[[], ClientSource]


@dataclass
class HostedEndpoint:
    name: str
    variants: list[HostedVariant]  # production variants: each request goes to one
    shadows: list[HostedVariant]  # shadow variants: each gets a copy, answers nobody
    capture: Capture | None
    writer: Callable[[], ClientSource]  # what captures are written with: the first production variant's role
    # During an update (sagemaker/deployments.py): the new fleet and its share of the traffic.
    green: HostedEndpoint | None = None
    green_share: float = 0.0

    @property
    def container(self) -> ServingContainer:
        """The first production variant's container (one-variant endpoints: the container)."""
        return self.variants[0].container

    def fleets(self) -> list[HostedEndpoint]:
        """This fleet and, during an update, the new one."""
        return [self] + ([self.green] if self.green is not None else [])

    def members(self) -> list[HostedVariant]:
        """This fleet's own variants, production and shadow."""
        return self.variants + self.shadows

    def all_variants(self) -> list[HostedVariant]:
        return [variant for fleet in self.fleets() for variant in fleet.members()]

    def running(self) -> bool:
        return all(v.container.process.poll() is None for v in self.all_variants())


class EndpointHost:
    def __init__(
        self,
        session_for_region: Callable[[str], ClientSource],
        as_role: Callable[[str, str], tuple[ClientSource, dict[str, str]]],
        exists: Callable[[str, str], bool] = lambda region, name: True,
    ) -> None:
        self._session_for_region = session_for_region  # SageMaker's own calls and metrics
        # What SageMaker does as a model's execution role (model download, capture, logs), and
        # how its container reaches AWS (runtime/vpc.py narrows that to the Model's VPC).
        self._as_role = as_role
        # Whether the endpoint still exists, however it was deleted (DeleteEndpoint, or the
        # stack deleted by CloudFormation, which calls no API this host sees).
        self._exists = exists
        self._endpoints: dict[tuple[str, str], HostedEndpoint] = {}
        self._starting: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._started = threading.Condition(self._lock)
        self._flusher = threading.Thread(target=self._housekeep, name="endpoint-housekeeping", daemon=True)
        self._flusher.start()
        self._shadowing = ThreadPoolExecutor(4, thread_name_prefix="shadow")  # copies to shadow variants
        self._copies_in_flight: set[Future] = set()

    def ensure(self, region: str, name: str) -> HostedEndpoint:
        """The running serving container for endpoint `name`, started on first use.

        Starting calls back into the local AWS (Describe*), so it runs outside the lock;
        concurrent first requests wait for the one start."""
        key = (region, name)
        with self._started:
            while key in self._starting:
                self._started.wait()
            hosted = self._endpoints.get(key)
            if hosted is not None and hosted.running():
                return hosted
            self._starting.add(key)
        try:
            hosted = self._start(region, name)
        finally:
            with self._started:
                self._starting.discard(key)
                self._started.notify_all()
        with self._lock:
            self._endpoints[key] = hosted
        return hosted

    def hosted(self, region: str, name: str) -> HostedEndpoint | None:
        """The endpoint's running container, if started (for inspection)."""
        with self._lock:
            return self._endpoints.get((region, name))

    def is_starting(self, region: str, name: str) -> bool:
        """True while the serving container is being started (its own Describe* calls are in flight)."""
        with self._lock:
            return (region, name) in self._starting

    def invoke(self, region: str, name: str, body: bytes, content_type: str, accept: str, target_variant: str = "") -> tuple[int, bytes, str, str]:
        """(status, body, content type, variant) of one invocation."""
        if not self._exists(region, name):
            self.stop(region, name)
            raise EndpointError(f"Endpoint {name} not found.")
        hosted = self.ensure(region, name)
        # OverheadLatency is the rest of this call, from here (a container's start, which
        # SageMaker does before InService, is not an invocation's overhead).
        received = time.perf_counter()
        fleet = hosted.green if hosted.green is not None and random.random() < hosted.green_share else hosted
        variant = route(fleet, target_variant)
        status, reply, reply_type = self._call(fleet, variant, body, content_type, accept, received)
        for shadow in fleet.shadows:
            copy = self._shadowing.submit(self._shadow, fleet, shadow, body, content_type, accept)
            with self._lock:
                self._copies_in_flight.add(copy)
            copy.add_done_callback(self._copy_done)
        return status, reply, reply_type, variant.name

    def start_green(self, region: str, name: str, config: str) -> None:
        """An update's new fleet, started beside the serving one, with no traffic yet."""
        blue = self.ensure(region, name)
        green = self._start(region, name, config)
        with self._lock:
            blue.green, blue.green_share = green, 0.0

    def shift(self, region: str, name: str, share: float) -> None:
        """Send `share` of the traffic to the new fleet."""
        with self._lock:
            self._endpoints[(region, name)].green_share = share

    def promote(self, region: str, name: str) -> None:
        """The new fleet serves alone; the old one is terminated."""
        with self._lock:
            blue = self._endpoints[(region, name)]
            green, blue.green = blue.green, None
            self._endpoints[(region, name)] = green
        self._retire(region, blue)

    def roll_back(self, region: str, name: str) -> None:
        """All traffic back to the old fleet; the new one is terminated."""
        with self._lock:
            blue = self._endpoints[(region, name)]
            green, blue.green, blue.green_share = blue.green, None, 0.0
        if green is not None:
            self._retire(region, green)

    def _retire(self, region: str, fleet: HostedEndpoint) -> None:
        try:
            self._flush(region, fleet, force=True)
            for variant in fleet.members():
                variant.telemetry.publish()
        except (ClientError, BotoCoreError) as error:
            print(f"localaws: last capture or metrics of {fleet.name} lost: {error}", file=sys.stderr)
        finally:
            stop_containers([variant.container for variant in fleet.members()])

    def set_weights(self, region: str, name: str, weights: dict[str, float]) -> None:
        """UpdateEndpointWeightsAndCapacities: new traffic shares, in place."""
        with self._lock:
            hosted = self._endpoints.get((region, name))
            for variant in hosted.variants if hosted else []:
                variant.weight = weights.get(variant.name, variant.weight)

    def _call(self, hosted: HostedEndpoint, variant: HostedVariant, body: bytes, content_type: str, accept: str, received: float) -> tuple[int, bytes, str]:
        """One request to one variant's container: its answer, captured and measured."""
        headers = {"Content-Type": content_type, "Accept": accept} if accept else {"Content-Type": content_type}
        try:
            sent = time.perf_counter()
            status, reply, reply_type = variant.container.request("POST", "/invocations", body, headers)
            answered = time.perf_counter()
        except (http.client.HTTPException, OSError) as error:
            raise EndpointError(f"the container of {hosted.name}/{variant.name} did not answer: {error}; its log ends: {variant.container.log_tail()}") from None
        if status == 200 and hosted.capture is not None:
            hosted.capture.record(variant.name, body, content_type, reply, reply_type)
        model = answered - sent
        variant.telemetry.record(status, model, time.perf_counter() - received - model)
        return status, reply, reply_type

    def _shadow(self, hosted: HostedEndpoint, shadow: HostedVariant, body: bytes, content_type: str, accept: str) -> None:
        """A shadow variant's copy of a request: measured and captured, its answer dropped."""
        try:
            self._call(hosted, shadow, body, content_type, accept, time.perf_counter())
        except EndpointError as error:  # the caller was answered already; the shadow's log says why
            print(f"localaws: shadow variant {shadow.name} of {hosted.name}: {error}", file=sys.stderr)

    def stop(self, region: str, name: str) -> None:
        with self._lock:
            hosted = self._endpoints.pop((region, name), None)
        if hosted is not None:
            try:
                self._flush(region, hosted, force=True)
            except ClientError:  # the capture bucket went with the stack: nothing to keep them in
                pass
            finally:
                stop_containers([variant.container for variant in hosted.all_variants()])

    def stop_all(self) -> None:
        endpoints = list(self._endpoints)
        if endpoints:
            with ThreadPoolExecutor(len(endpoints), thread_name_prefix="stop-all") as pool:
                list(pool.map(lambda key: self.stop(*key), endpoints))

    # --- starting a serving container ----------------------------------------------------

    def _start(self, region: str, name: str, config_name: str | None = None) -> HostedEndpoint:
        """A fleet of endpoint `name`: its current config's, or `config_name`'s (an update's)."""
        sagemaker = self._session_for_region(region).client("sagemaker")
        try:
            endpoint = sagemaker.describe_endpoint(EndpointName=name)
        except sagemaker.exceptions.ClientError:
            raise EndpointError(f"Endpoint {name} not found.") from None
        config = sagemaker.describe_endpoint_config(EndpointConfigName=config_name or endpoint["EndpointConfigName"])
        # The endpoint's current weights (UpdateEndpointWeightsAndCapacities may have changed them).
        current = {} if config_name else {v["VariantName"]: v.get("CurrentWeight") for v in endpoint.get("ProductionVariants", [])}

        def weight(variant: dict) -> float:
            now = current.get(variant["VariantName"])
            return float(variant.get("InitialVariantWeight", 1.0) if now is None else now)

        wanted = config["ProductionVariants"] + config.get("ShadowProductionVariants", [])
        # SageMaker provisions a fleet's instances side by side: every variant's container
        # starts at once, and the fleet is up when the slowest passes its health check.
        with ThreadPoolExecutor(len(wanted), thread_name_prefix=f"start-{name}") as pool:
            starts = [pool.submit(self._start_variant, region, sagemaker, name, v, weight(v)) for v in wanted]
        started = [start.result() for start in starts if start.exception() is None]
        failed = next((start.exception() for start in starts if start.exception() is not None), None)
        if failed is not None:
            stop_containers([variant.container for variant in started])
            raise failed
        production = len(config["ProductionVariants"])
        return HostedEndpoint(name, started[:production], started[production:], Capture.from_config(config), started[0].role)

    def _start_variant(self, region: str, sagemaker, endpoint: str, variant: dict, weight: float) -> HostedVariant:
        model, container = model_container(sagemaker, variant["ModelName"])
        try:
            role, role_environment = self._as_role(model["ExecutionRoleArn"], region)
            current_role = lambda: self._as_role(model["ExecutionRoleArn"], region)[0]  # noqa: E731
            archive = read_object(role.client("s3"), container["ModelDataUrl"])
        except RoleNotAssumable as error:
            raise EndpointError(f"variant {variant['VariantName']}: {error}") from None
        except ClientError as error:
            detail = error.response.get("Error", {})
            raise EndpointError(f"variant {variant['VariantName']}: Failed to download model data from {container['ModelDataUrl']}. "
                                f"{detail.get('Code')}: {detail.get('Message')}") from None
        isolated = model.get("EnableNetworkIsolation", False)
        try:
            network = None if isolated else vpc.network_environment(
                role_environment, self._session_for_region(region).client("ec2"), model.get("VpcConfig"), role_ec2=role.client("ec2"))
            serving = start_serving_container(
                f"{endpoint}/{variant['VariantName']}", archive, container.get("Environment", {}),
                network_isolation=isolated,
                network_environment=network,
            )
        except (ContainerFailed, vpc.VpcConfigError, ClientError) as error:
            raise EndpointError(f"variant {variant['VariantName']}: {error}") from None
        telemetry = EndpointTelemetry(
            endpoint, variant["VariantName"], serving.log_path, self._session_for_region(region), current_role, int(variant.get("InitialInstanceCount") or 1)
        )
        return HostedVariant(variant["VariantName"], serving, telemetry, weight, current_role)

    # --- in the background: capture flushes, telemetry, deleted endpoints ----------------

    def _housekeep(self) -> None:
        """Flush captured requests, publish metrics and logs; stop the containers of endpoints
        deleted meanwhile."""
        published = time.monotonic()
        while True:
            time.sleep(FLUSH_SECONDS / 2)
            publish, now = False, time.monotonic()
            if now - published >= TELEMETRY_SECONDS:
                publish, published = True, now
            for (region, name), hosted in list(self._endpoints.items()):
                try:
                    if self._exists(region, name):
                        for fleet in hosted.fleets():
                            self._flush(region, fleet)
                            if publish:
                                self._publish(fleet)
                    else:
                        self.stop(region, name)
                except ClientError as error:  # keep housekeeping; say what was lost
                    print(f"localaws: data capture of {name} not written: {error}", file=sys.stderr)

    def _publish(self, hosted: HostedEndpoint) -> None:
        for variant in hosted.members():
            try:
                variant.telemetry.publish()
            except (ClientError, BotoCoreError) as error:  # the figures are lost, serving goes on
                print(f"localaws: metrics or logs of {hosted.name}/{variant.name} not published: {error}", file=sys.stderr)

    def _flush(self, region: str, hosted: HostedEndpoint, force: bool = False) -> None:
        if hosted.capture is not None:
            hosted.capture.flush(hosted.name, lambda: hosted.writer().client("s3"), force)

    def _copy_done(self, copy: Future) -> None:
        with self._lock:
            self._copies_in_flight.discard(copy)

    def flush_all(self) -> None:
        """Write out everything captured so far, the shadow copies already sent included."""
        with self._lock:
            in_flight = list(self._copies_in_flight)
        wait(in_flight)
        for (region, _), hosted in list(self._endpoints.items()):
            for fleet in hosted.fleets():
                self._flush(region, fleet, force=True)


def model_container(sagemaker, model_name: str) -> tuple[dict, dict]:
    """(DescribeModel, the container that serves it): a package's inference container when
    the model names a model package, as SageMaker resolves it for endpoints and transforms."""
    model = sagemaker.describe_model(ModelName=model_name)
    container = model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]
    if container.get("ModelPackageName"):
        package = sagemaker.describe_model_package(ModelPackageName=container["ModelPackageName"])
        container = package["InferenceSpecification"]["Containers"][0]
    if not container.get("ModelDataUrl"):
        raise EndpointError(f"model {model_name} has no ModelDataUrl")
    return model, container

