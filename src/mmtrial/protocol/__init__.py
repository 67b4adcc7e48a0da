"""Protocols as data (``storm.toml`` is the bundled reference protocol; :func:`bundled_names`)."""

from mmtrial.protocol.model import LadderStep, Protocol, bundled, bundled_names, load_protocol

__all__ = ["LadderStep", "Protocol", "bundled", "bundled_names", "load_protocol"]
