"""The application container. Built by the entry point, never at import time."""

from __future__ import annotations

import os
from typing import Any

from dependency_injector import containers, providers

from motey.capabilityengine.capability_engine import CapabilityEngine
from motey.capabilityengine.detectors import CapabilityDetector
from motey.communication.api.app import create_app
from motey.communication.api_server import APIServer
from motey.communication.communication_manager import CommunicationManager
from motey.communication.ipc_subscriber import IPCCapabilitySubscriber
from motey.communication.mqtt_discovery import MQTTDiscovery
from motey.communication.zeromq_client import ZeroMQNodeClient
from motey.communication.zeromq_context import zeromq_context
from motey.communication.zeromq_server import NodeRequestHandler, ZeroMQServer
from motey.core import Core
from motey.logging_setup import setup_logging
from motey.node.identity import NodeIdentity, node_id_for
from motey.node.status import NodeStatusMonitor
from motey.orchestrator.cluster import ClusterGateway
from motey.orchestrator.executor import ImageExecutor
from motey.orchestrator.inter_node_orchestrator import InterNodeOrchestrator
from motey.orchestrator.placement import Placement
from motey.orchestrator.policy import BlueprintPolicy
from motey.repositories.base import Database
from motey.repositories.capability_repository import CapabilityRepository
from motey.repositories.node_repository import NodeRepository
from motey.repositories.service_repository import ServiceRepository
from motey.security.access import AccessControl, FailureLimiter, TokenStore
from motey.security.audit import AuditLog
from motey.security.credentials import credentials_for
from motey.security.membership import CellMembers
from motey.val.loader import discover_plugins
from motey.val.manager import VALManager


def _open_database(path: str, name: str) -> Any:
    """Resource: open one TinyDB file and close it on shutdown."""
    database = Database(os.path.join(path, name)).open()
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
    }


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
    services_db = providers.Resource(_open_database, config.DATABASE.path, "services.json")
    nodes_db = providers.Resource(_open_database, config.DATABASE.path, "nodes.json")
    capabilities_db = providers.Resource(_open_database, config.DATABASE.path, "capabilities.json")
    service_repository = providers.Singleton(ServiceRepository, services_db)
    node_repository = providers.Singleton(NodeRepository, nodes_db)
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
    image_executor = providers.Singleton(
        ImageExecutor,
        identity,
        val_manager,
        capability_engine,
        policy=policy,
        device_paths=capability_detector.provided.devices,
    )
    gateway = providers.Singleton(
        ClusterGateway, identity, image_executor, node_repository, remote_client
    )
    placement = providers.Singleton(
        Placement, gateway, timeout=config.ORCHESTRATOR.placement_timeout
    )
    orchestrator = providers.Singleton(
        InterNodeOrchestrator,
        services=service_repository,
        val_manager=val_manager,
        gateway=gateway,
        placement=placement,
        identity=identity,
        watch_interval=config.ORCHESTRATOR.watch_interval,
        workers=config.ORCHESTRATOR.workers,
        subscribe_capabilities=capability_engine.provided.subscribe,
        policy=policy,
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
        access=access_control,
        audit=audit_log,
    )
    api_server = providers.Singleton(
        APIServer,
        app=flask_app,
        ip=config.WEBSERVER.ip,
        port=config.WEBSERVER.port,
        threads=config.WEBSERVER.threads,
        tls=providers.Callable(lambda c: c and (c.cert_path, c.key_path), credentials),
    )
    zeromq_server = providers.Singleton(
        ZeroMQServer,
        context=zmq_context,
        handler=providers.Singleton(NodeRequestHandler, image_executor, audit=audit_log),
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
            val_manager,
            capability_engine,
            capability_detector,
            ipc_subscriber,
            node_status,
            remote_client,
            orchestrator,
            access_control,
            communication_manager,
        ),
    )


def build_container(config: dict[str, Any]) -> ApplicationContainer:
    """A container fed with a loaded configuration (see :func:`motey.config.load_config`)."""
    container = ApplicationContainer()
    container.config.from_dict(config)
    return container
