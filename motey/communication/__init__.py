"""Transports: REST (Flask), MQTT discovery (paho) and node-to-node ZeroMQ (pyzmq).

Only this package imports flask, paho and zmq.
"""
