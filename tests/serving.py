"""Starting a real Streamlit server for tests, benchmarks and scripts: a free port, and waiting for health."""

from __future__ import annotations

import socket
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_healthy(base: str, seconds: float = 60, pause: float = 0.3) -> bool:
    """True once ``base``/_stcore/health answers ``ok``; False after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as response:
                if response.read() == b"ok":
                    return True
        except OSError:
            time.sleep(pause)
    return False
