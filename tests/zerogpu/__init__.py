"""What the ZeroGPU tests share: a stand-in for the ZeroGPU device API, the environment that runs the real `spaces`
package on this CPU-only machine (the shim in site/sitecustomize.py), and waits on conditions with deadlines."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

SITE = Path(__file__).resolve().parent / "site"
"""Put on PYTHONPATH: its sitecustomize.py lets `import spaces` work with SPACES_ZERO_GPU=true under CPU torch."""


def wait_until(condition, timeout: float, what: str, interval: float = 0.05):
    """Poll `condition` until it returns something true; fail after `timeout` seconds, saying what was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class DeviceAPI:
    """The ZeroGPU device API that `spaces` calls (SPACES_ZERO_DEVICE_API_URL: /startup-report, /schedule, /allow,
    /release), on 127.0.0.1: every /schedule is granted at once on one idle GPU. Keeps every request it got."""

    def __init__(self):
        self.requests: list[tuple[str, dict]] = []
        self._lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                url = urlsplit(self.path)
                params = {k: v[0] for k, v in parse_qs(url.query).items()}
                with api._lock:
                    api.requests.append((url.path, params))
                if url.path == "/schedule":
                    body = json.dumps({"idle": True, "nvidiaIndex": 0, "nvidiaUUID": "GPU-emulated-0",
                                       "allowToken": f"token-{len(api.requests)}"}).encode()  # fmt: skip
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                else:
                    body = b""
                    self.send_response(200)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def routes(self, route: str) -> list[dict]:
        """The parameters of every request made to `route`, in order."""
        with self._lock:
            return [params for path, params in self.requests if path == route]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def stop_workers(pids) -> None:
    """The GPU workers `spaces` forked outlive the app if it is killed: ask each to stop (SIGTERM closes its queue,
    and it leaves its loop), and kill those still there after a while."""
    pids = [int(p) for p in pids]
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGTERM)
    try:
        wait_until(lambda: not any(alive(p) for p in pids), 10, "the GPU workers to stop")
    except AssertionError:
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def zerogpu_env(api: DeviceAPI, scratch: Path) -> dict[str, str]:
    """Environment of a process that runs the real `spaces` package in ZeroGPU mode on this machine."""
    cgroup = scratch / "cgroup"
    cgroup.write_text("1:devices:/emulated-space\n")
    return {
        "SPACES_ZERO_GPU": "true",
        "SPACES_ZERO_DEVICE_API_URL": api.url,
        "ZEROGPU_PROC_SELF_CGROUP_PATH": str(cgroup),
        "ZEROGPU_OFFLOAD_DIR": str(scratch / "offload"),
        "PYTHONUNBUFFERED": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
    }


def press(url: str, elem_id: str, values: dict[str, object], timeout: float = 120.0) -> dict[str, object]:
    """Click the button `elem_id` the way the page does, over the page's own queue protocol: join the queue with
    the event's inputs (each component's initial value, or `values[elem_id]`), then read the event stream until the
    event completes. Returns its outputs by elem_id (a Markdown's text as it would be rendered from)."""
    import uuid

    import httpx

    config = httpx.get(url + "config", timeout=30).json()
    prefix = url.rstrip("/") + config.get("api_prefix", "/gradio_api")
    components = {c["id"]: c for c in config["components"]}
    ids = {c["props"]["elem_id"]: c["id"] for c in config["components"] if c.get("props", {}).get("elem_id")}
    button = ids[elem_id]
    event = next(d for d in config["dependencies"] if [button, "click"] in d["targets"] and d["backend_fn"])
    names = {i: components[i]["props"].get("elem_id") for i in (*event["inputs"], *event["outputs"])}
    data = [values.get(names[i], components[i]["props"].get("value")) for i in event["inputs"]]
    session = uuid.uuid4().hex[:11]
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=timeout) as http:
        joined = http.post(f"{prefix}/queue/join", json={"data": data, "event_data": None, "fn_index": event["id"],
                                                         "trigger_id": button, "session_hash": session})  # fmt: skip
        joined.raise_for_status()
        event_id = joined.json()["event_id"]
        with http.stream("GET", f"{prefix}/queue/data", params={"session_hash": session}) as stream:
            for line in stream.iter_lines():
                if time.monotonic() > deadline:
                    raise AssertionError(f"the page's event did not complete in {timeout:.0f} s")
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("msg") != "process_completed" or message.get("event_id") != event_id:
                    continue
                if not message.get("success"):
                    raise AssertionError(f"the page's event failed: {message.get('output')}")
                out = {}
                for i, value in zip(event["outputs"], message["output"]["data"]):
                    if isinstance(value, dict) and value.get("__type__") == "update":
                        value = value.get("value")
                    out[names[i]] = value
                return out
    raise AssertionError("the page's event stream ended before the event completed")
