"""`mnistlab serve --read-only`: a real server that answers its health check, refuses training and
runs with the hosted settings (read back from the running server)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request

import psutil
import pytest

from tests.conftest import ROOT
from tests.serving import free_port, wait_healthy


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    port = free_port()
    env = {**os.environ, "MNISTLAB_DATA": "sample", "MNISTLAB_OFFLINE": "1"}
    env.pop("MNISTLAB_READ_ONLY", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "mnistlab", "serve", "--read-only", "--address", "127.0.0.1", "--port", str(port),
         "--store", str(tmp_path_factory.mktemp("served") / "runs")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    if not wait_healthy(base):
        process.kill()
        pytest.fail("mnistlab serve did not become healthy: " + process.communicate()[0][-2000:])
    try:
        yield port, psutil.Process(process.pid)
    finally:
        children = psutil.Process(process.pid).children(recursive=True)
        process.terminate()  # serve passes the signal on to Streamlit; any leftover is ended by its id
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        for child in children:
            if child.is_running():
                child.kill()


def _open(port: int, page: str) -> list:
    """The ForwardMsgs of one script run of ``page``, asked for as the browser does."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from websockets.sync.client import connect

    ask = BackMsg()
    ask.rerun_script.page_name = page
    messages = []
    with connect(f"ws://127.0.0.1:{port}/_stcore/stream", subprotocols=["streamlit"], max_size=None,
                 open_timeout=30) as ws:
        ws.send(ask.SerializeToString())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            msg = ForwardMsg()
            msg.ParseFromString(ws.recv(timeout=60))
            messages.append(msg)
            if msg.WhichOneof("type") == "script_finished" and \
                    msg.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                return messages
    raise AssertionError(f"the {page} page did not finish in 60 s")


def _texts(messages) -> str:
    parts = []
    for msg in messages:
        if msg.WhichOneof("type") == "delta" and msg.delta.WhichOneof("type") == "new_element":
            element = msg.delta.new_element
            kind = element.WhichOneof("type")
            if kind in ("markdown", "alert", "exception"):
                parts.append(f"{kind}: " + getattr(element, kind).body if kind != "exception"
                             else "exception: " + element.exception.message)
    return "\n".join(parts)


def test_served_read_only_answers_health_and_refuses_training(served):
    port, _ = served
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=5) as response:
        assert response.read() == b"ok"
    text = _texts(_open(port, "train"))
    assert "exception:" not in text
    assert "This instance is read-only: it shows stored runs but does not train." in text


def test_served_settings_are_in_effect(served):
    """What the server tells each new session (toolbar, usage statistics), and the
    flags of the running Streamlit process (upload limit, XSRF, file watching)."""
    from streamlit.proto.NewSession_pb2 import Config

    port, serve_process = served
    new_session = next(m.new_session for m in _open(port, "compare") if m.WhichOneof("type") == "new_session")
    assert new_session.config.toolbar_mode == Config.VIEWER
    assert new_session.config.gather_usage_stats is False
    streamlit = next(p for p in serve_process.children(recursive=True) if "streamlit" in p.cmdline())
    flags = streamlit.cmdline()
    value = {flags[i]: flags[i + 1] for i in range(len(flags) - 1) if flags[i].startswith("--")}
    assert value["--server.maxUploadSize"] == "200"  # mnistlab.runs.bundles.MAX_BUNDLE_BYTES
    assert value["--server.enableXsrfProtection"] == "true"
    assert value["--server.fileWatcherType"] == "none"
    assert value["--server.address"] == "127.0.0.1"
    assert streamlit.environ().get("MNISTLAB_READ_ONLY") == "1"
