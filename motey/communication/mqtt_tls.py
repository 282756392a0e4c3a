"""MQTT over TLS with a cell certificate: the settings every secure MQTT client shares."""

from __future__ import annotations

import ssl
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from motey.errors import CommunicationError


def use_tls(client: mqtt.Client, ca_cert: str, cert: str, key: str) -> None:
    """Make ``client`` verify the broker against the cell CA and present ``cert``."""
    client.tls_set(
        ca_certs=ca_cert,
        certfile=cert,
        keyfile=key,
        cert_reqs=ssl.CERT_REQUIRED,
        tls_version=ssl.PROTOCOL_TLS_CLIENT,
    )


def publish_retained(
    host: str, port: int, ca_cert: str, cert: str, key: str, topic: str, payload: bytes
) -> None:
    """Publish one retained message over TLS and wait until the broker has it."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"motey-cell-{uuid.uuid4().hex[:8]}",
        protocol=mqtt.MQTTv311,
    )
    use_tls(client, ca_cert, cert, key)
    try:
        client.connect(host, port, keepalive=10)
        client.loop_start()
        info = client.publish(topic, payload, qos=1, retain=True)
        info.wait_for_publish(timeout=10)
        if not info.is_published():
            raise CommunicationError(f"broker {host}:{port} did not confirm the publication")
    except (OSError, ValueError, RuntimeError, ssl.SSLError) as exc:
        raise CommunicationError(f"cannot publish to broker {host}:{port}: {exc}") from exc
    finally:
        client.disconnect()
        client.loop_stop()
