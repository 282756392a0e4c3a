"""Wire formats of the cluster transports: encoding, decoding and validation only.

Socket loops (paho, pyzmq) only move bytes; everything that knows what the bytes mean
lives here, free of any transport library, so it can be tested on its own.
"""
