"""The application container. Built by the entry point, never at import time."""

from __future__ import annotations

import os
from typing import Any

from dependency_injector import containers, providers

from motey.capabilityengine.capability_engine import CapabilityEngine
from motey.capabilityengine.detectors import CapabilityDetector
from motey.communication.api.app import create_app
from motey.communication.api.streams import StreamGate, StreamService
from motey.communication.api_server import APIServer
from motey.communication.communication_manager import CommunicationManager
from motey.communication.ipc_subscriber import IPCCapabilitySubscriber
from motey.communication.mqtt_discovery import MQTTDiscovery
from motey.communication.zeromq_client import ZeroMQNodeClient
from motey.communication.zeromq_context import zeromq_context
from motey.communication.zeromq_server import NodeRequestHandler, ZeroMQServer
from motey.core import Core
from motey.events import EventBus
from motey.logging_setup import setup_logging
from motey.node.identity import NODE_ID_FILE, NodeIdentity, node_id_for
from motey.node.status import NodeStatusMonitor
from motey.orchestrator.cell import CellView
from motey.orchestrator.cluster import ClusterGateway, PeerHealth
from motey.orchestrator.executor import ImageExecutor
from motey.orchestrator.fencing import Fence
from motey.orchestrator.idempotency import IdempotentSubmissions
from motey.orchestrator.inter_node_orchestrator import InterNodeOrchestrator
from motey.orchestrator.logs import LogReader
from motey.orchestrator.placement import Placement
from motey.orchestrator.policy import BlueprintPolicy
from motey.repositories.base import Database
from motey.repositories.capability_repository import CapabilityRepository
from motey.repositories.idempotency_repository import IdempotencyRepository
from motey.repositories.node_repository import NodeRepository
from motey.repositories.service_repository import ServiceRepository
from motey.security.access import AccessControl, FailureLimiter, TokenStore
from motey.security.audit import AuditLog
from motey.security.credentials import credentials_for
from motey.security.membership import CellMembers
from motey.val.loader import discover_plugins
from motey.val.manager import VALManager
from motey.val.states import InstanceStates


def _open_database(path: str, name: str, _logging: Any = None, owner: str | None = None) -> Any:
    """Resource: open one TinyDB file and close it on shutdown.

    ``_logging`` only orders the resources: a restored file is reported in the log.
    ``owner`` names the node id file for the database whose records decide orphans.
    """
    owner_file = os.path.join(path, owner) if owner else None
    database = Database(os.path.join(path, name), owner_file=owner_file).open()
    try:
        yield database
    finally:
        database.close()


def _ports(config: dict[str, Any]) -> dict[str, int]:
    zmq = config["ZEROMQ"]
    return {
        "api": config["WEBSERVER"]["port"],
        "capabilities_replier": zmq["capabilities_replier"],
        "deploy_image_replier": zmq["deploy_image_replier"],
        "image_status_replier": zmq["image_status_replier"],
        "image_terminate_replier": zmq["image_terminate_replier"],
        "image_logs_replier": zmq["image_logs_replier"],
        "services_replier": zmq["services_replier"],
        "image_claims_replier": zmq["image_claims_replier"],
    }


def _owned_services(services: ServiceRepository) -> Any:
    """What a peer's services request is answered with: this node's services as dicts."""
    return lambda: [s.to_dict() for s in services.all()]


def _audit_folder(config: dict[str, Any]) -> str:
    """The audit log lives with the other logs; without a log folder, with the data."""
    return str(config["LOGGER"]["log_path"] or config["DATABASE"]["path"])


def _plugin_dirs(value: str) -> list[str]:
    return [p.strip() for p in value.split(",") if p.strip()]


class ApplicationContainer(containers.DeclarativeContainer):
    """Every component of a node and how they are wired."""

    config = providers.Configuration(strict=True)
    full_config = providers.Callable(lambda c: c, config)

    logging = providers.Resource(
        setup_logging,
        log_path=config.LOGGER.log_path,
        file_name=config.LOGGER.file_name,
        level=config.LOGGER.level,
        console=config.LOGGER.console,
    )

    # -- data ----------------------------------------------------------------------
    services_db = providers.Resource(
        _open_database, config.DATABASE.path, "services.json", logging, owner=NODE_ID_FILE
    )
    capabilities_db = providers.Resource(
        _open_database, config.DATABASE.path, "capabilities.json", logging
    )
    service_repository = providers.Singleton(ServiceRepository, services_db)
    node_repository = providers.Singleton(NodeRepository)
    capability_repository = providers.Singleton(CapabilityRepository, capabilities_db)

    # -- this node -----------------------------------------------------------------
    # Secure mode: the node's cell credentials (None in open mode) and the cell's members.
    credentials = providers.Singleton(credentials_for, full_config)
    members = providers.Singleton(CellMembers, credentials)
    node_id = providers.Singleton(
        node_id_for, config.DATABASE.path, providers.Callable(lambda c: c and c.name, credentials)
    )
    identity = providers.Singleton(
        NodeIdentity,
        node_id=node_id,
        name=config.NODE.name,
        ip=config.NODE.ip,
        ports=providers.Callable(_ports, full_config),
        security_mode=config.SECURITY.mode,
    )
    node_status = providers.Singleton(NodeStatusMonitor, disk_path=config.DATABASE.path)

    # -- virtualization ------------------------------------------------------------
    val_manager = providers.Singleton(
        VALManager,
        discover=providers.Callable(
            lambda dirs: lambda: discover_plugins(dirs),
            providers.Callable(_plugin_dirs, config.VAL.plugin_path),
        ),
        settings=full_config,
        node_id=node_id,
    )

    # -- capabilities --------------------------------------------------------------
    zmq_context = providers.Resource(zeromq_context)
    capability_engine = providers.Singleton(
        CapabilityEngine,
        repository=capability_repository,
        static_capabilities=config.NODE.capabilities,
        engine_capabilities=val_manager.provided.capabilities,
    )
    capability_detector = providers.Singleton(
        CapabilityDetector,
        engine=capability_engine,
        device_rules=config.NODE.device_rules,
        poll_interval=config.NODE.device_poll_interval,
        detect_facts=config.NODE.detect_facts,
    )
    ipc_subscriber = providers.Singleton(
        IPCCapabilitySubscriber,
        path=config.ZEROMQ.capability_engine_ipc_path,
        engine=capability_engine,
        context=zmq_context,
        group=config.ZEROMQ.capability_engine_ipc_group,
    )

    # -- orchestration -------------------------------------------------------------
    remote_client = providers.Singleton(
        ZeroMQNodeClient,
        context=zmq_context,
        request_timeout=config.ZEROMQ.request_timeout,
        action_timeout=config.ZEROMQ.action_timeout,
        credentials=credentials,
    )
    policy = providers.Singleton(
        BlueprintPolicy.from_config, config.POLICY, docker_url=config.DOCKER.url
    )
    # Image status from memory, kept current by the engines' event streams.
    instance_states = providers.Singleton(InstanceStates, val_manager)
    image_executor = providers.Singleton(
        ImageExecutor,
        identity,
        val_manager,
        capability_engine,
        policy=policy,
        device_paths=capability_detector.provided.devices,
        states=instance_states,
    )
    peer_health = providers.Singleton(
        PeerHealth,
        node_repository,
        max_failures=config.ORCHESTRATOR.peer_max_failures,
        grace=config.ORCHESTRATOR.peer_grace,
    )
    gateway = providers.Singleton(
        ClusterGateway, identity, image_executor, node_repository, remote_client, peer_health
    )
    placement = providers.Singleton(
        Placement, gateway, timeout=config.ORCHESTRATOR.placement_timeout
    )
    orchestrator = providers.Singleton(
        InterNodeOrchestrator,
        services=service_repository,
        executor=image_executor,
        gateway=gateway,
        placement=placement,
        identity=identity,
        watch_interval=config.ORCHESTRATOR.watch_interval,
        workers=config.ORCHESTRATOR.workers,
        subscribe_capabilities=capability_engine.provided.subscribe,
        policy=policy,
        placement_deadline=config.ORCHESTRATOR.placement_deadline,
        reschedule_after=config.ORCHESTRATOR.reschedule_after,
    )
    fence = providers.Singleton(
        Fence,
        identity,
        image_executor,
        gateway,
        stop_after_disconnect=config.ORCHESTRATOR.stop_after_disconnect,
    )

    idempotency_repository = providers.Singleton(IdempotencyRepository, services_db)
    submissions = providers.Singleton(
        IdempotentSubmissions,
        orchestrator=orchestrator,
        services=service_repository,
        answers=idempotency_repository,
    )

    # -- operator views: events, logs, the cell's services ---------------------------
    event_bus = providers.Singleton(
        EventBus,
        max_subscribers=64,
        services=service_repository,
        nodes=node_repository,
        capabilities=capability_engine,
        identity=identity,
    )
    stream_gate = providers.Singleton(StreamGate, max_streams=config.WEBSERVER.max_streams)
    log_reader = providers.Singleton(LogReader, service_repository, gateway)
    streams = providers.Singleton(
        StreamService,
        gate=stream_gate,
        bus=event_bus,
        logs=log_reader,
        max_follow_seconds=config.WEBSERVER.follow_limit,
    )
    cell_view = providers.Singleton(
        CellView, service_repository, gateway, node_repository, identity
    )

    # -- access control and audit (docs/security.md) ----------------------------------
    token_store = providers.Singleton(
        TokenStore.from_config, config.SECURITY.credentials, config.DATABASE.path
    )
    access_control = providers.Singleton(
        AccessControl,
        mode=config.SECURITY.mode,
        store=token_store,
        limiter=providers.Singleton(
            FailureLimiter,
            limit=config.SECURITY.failed_token_limit,
            window=config.SECURITY.failed_token_window,
        ),
    )
    audit_log = providers.Singleton(
        AuditLog.in_folder, providers.Callable(_audit_folder, full_config)
    )

    # -- communication -------------------------------------------------------------
    flask_app = providers.Singleton(
        create_app,
        orchestrator=orchestrator,
        capability_engine=capability_engine,
        node_repository=node_repository,
        node_status=node_status,
        identity=identity,
        cors_origins=config.WEBSERVER.cors_origins,
        webclient_path=config.WEBSERVER.webclient_path,
        cell=cell_view,
        streams=streams,
        submissions=submissions,
        access=access_control,
        audit=audit_log,
        image_count=image_executor.provided.image_count,
    )
    api_server = providers.Singleton(
        APIServer,
        app=flask_app,
        ip=config.WEBSERVER.ip,
        port=config.WEBSERVER.port,
        threads=config.WEBSERVER.threads,
        streams=stream_gate,
        tls=providers.Callable(lambda c: c and (c.cert_path, c.key_path), credentials),
    )
    zeromq_server = providers.Singleton(
        ZeroMQServer,
        context=zmq_context,
        handler=providers.Singleton(
            NodeRequestHandler,
            image_executor,
            providers.Callable(_owned_services, service_repository),
            orchestrator.provided.answer_claims,
            audit=audit_log,
        ),
        ip=config.NODE.ip,
        ports=providers.Callable(_ports, full_config),
        credentials=credentials,
        members=members,
    )
    discovery = providers.Singleton(
        MQTTDiscovery,
        identity=identity,
        nodes=node_repository,
        describe=image_executor.provided.describe,
        host=config.MQTT.ip,
        port=config.MQTT.port,
        keepalive=config.MQTT.keepalive,
        username=config.MQTT.username,
        password=config.MQTT.password,
        client_id=config.MQTT.client_id,
        reconnect_max_delay=config.MQTT.reconnect_max_delay,
        presence_interval=config.MQTT.presence_interval,
        subscribe_capabilities=capability_engine.provided.subscribe,
        credentials=credentials,
        members=members,
    )
    # Started in this order, stopped in reverse: peers learn of this node (discovery)
    # only once its repliers listen, and it says goodbye before they close.
    communication_manager = providers.Singleton(
        CommunicationManager, transports=providers.List(api_server, zeromq_server, discovery)
    )

    core = providers.Singleton(
        Core,
        identity=identity,
        components=providers.List(
            event_bus,
            val_manager,
            instance_states,
            capability_engine,
            capability_detector,
            ipc_subscriber,
            node_status,
            remote_client,
            access_control,
            communication_manager,
        ),
        # The fence asks owners about this node's copies before it reports OPERATE.
        workers=providers.List(fence, orchestrator),
    )


def build_container(config: dict[str, Any]) -> ApplicationContainer:
    """A container fed with a loaded configuration (see :func:`motey.config.load_config`)."""
    container = ApplicationContainer()
    container.config.from_dict(config)
    return container


def shutdown_resources(container: ApplicationContainer, drained: bool) -> None:
    """Close the resources; the shared ZeroMQ context only when no thread still uses it.

    A replier or REST worker that outlived its stop wait may still hold a socket of the
    context; destroying it under that thread is unsafe, so process exit ends it instead.
    The databases refuse any access once closed (they never reopen), so they always close.
    """
    if drained:
        container.shutdown_resources()
        return
    for resource in (container.services_db, container.capabilities_db):
        resource.shutdown()
    container.logging.shutdown()
