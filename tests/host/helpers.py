"""Helpers for talking to the runner over HTTP and waiting for outcomes without fixed sleeps."""

from __future__ import annotations

import base64
import binascii
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient

from sandbox.launch import ServerProcess

SAMPLE_APP = Path(__file__).resolve().parent / "apps" / "sample"

T = TypeVar("T")


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def call(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> Answer:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return Answer(response.status, dict(response.headers.items()), response.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, dict(error.headers.items()), error.read())


def wait_for(probe: Callable[[], T | None], *, timeout: float = 15.0, what: str = "condition") -> T:
    """Poll `probe` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


@dataclass
class Runner:
    server: ServerProcess
    record_dir: Path
    queue: str
    connection_string: str

    def url(self, path: str) -> str:
        return self.server.base_url + path

    def get(self, path: str, headers: dict[str, str] | None = None) -> Answer:
        return call("GET", self.url(path), headers=headers)

    def post_json(self, path: str, document: Any) -> Answer:
        body = json.dumps(document).encode()
        return call("POST", self.url(path), body, {"Content-Type": "application/json"})

    def records(self, kind: str) -> list[dict[str, Any]]:
        path = self.record_dir / f"{kind}.jsonl"
        if not path.exists():
            return []
        text = path.read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]

    def status(self) -> dict[str, Any]:
        return self.get("/admin/sandbox/status").json()

    def queue_client(self, name: str | None = None) -> QueueClient:
        return QueueClient.from_connection_string(self.connection_string, name or self.queue)

    def poison_bodies(self) -> list[str]:
        """Bodies on the poison queue, base64-decoded as the sample app's host.json encodes them."""
        client = self.queue_client(f"{self.queue}-poison")
        try:
            contents = [m.content for m in client.peek_messages(max_messages=32)]
        except ResourceNotFoundError:  # the poison queue does not exist until a first message lands there
            return []
        finally:
            client.close()
        bodies = []
        for content in contents:
            try:
                bodies.append(base64.b64decode(content, validate=True).decode())
            except (binascii.Error, UnicodeDecodeError):
                continue  # put there raw by a test on purpose
        return bodies
