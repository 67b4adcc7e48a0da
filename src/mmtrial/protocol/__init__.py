"""Protocols as data (``storm.toml`` is the bundled reference protocol)."""

from mmtrial.protocol.model import Protocol, load_protocol

__all__ = ["Protocol", "load_protocol"]
