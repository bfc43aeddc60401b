"""Interop: the official Python MCP SDK drives toolgate, which fronts third-party upstreams
(mcp-server-time over stdio, @modelcontextprotocol/server-everything over streamable HTTP)."""

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

ROOT = Path(__file__).resolve().parent.parent
TOOLGATE = ROOT / "target" / "debug" / "toolgate"
TIME_SERVER = ROOT / ".venv" / "interop" / "bin" / "mcp-server-time"
JWKS = ROOT / "examples" / "quickstart" / "dev-keys" / "dev.jwks.json"
AGENTS = """agents:
  interop:
    owner: qa
    description: Interop test client acting alone.
    scope: ['*']
    max_classification: restricted
    acts_alone:
      - issuer: toolgate-dev
        subject: interop
"""
EVERYTHING = ROOT / "interop" / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, seconds: float = 30) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listening on {port}")


@pytest.fixture(scope="module")
def gateway():
    procs = []
    port = free_port()
    everything = subprocess.Popen(
        ["node", str(EVERYTHING), "streamableHttp"],
        env={**os.environ, "PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    procs.append(everything)
    wait_port(port)
    upstreams = (
        f"  - name: time\n    stdio:\n      command: \"{TIME_SERVER}\"\n      args: [\"--local-timezone\", \"UTC\"]\n"
        f"  - name: everything\n    http:\n      url: \"http://127.0.0.1:{port}/mcp\"\n"
    )
    # These tests are about the protocol, not policy: every tool in the caller's scope is allowed.
    yield from serve(upstreams, ROOT / "tests" / "fixtures" / "policy-open", ROOT / "tests" / "fixtures" / "manifests-empty", procs)


def serve(upstreams, policy_dir, manifests_dir, procs):
    """Runs toolgate with these upstreams and policy until the fixture ends; yields its MCP URL."""
    workdir = tempfile.mkdtemp()
    config = Path(workdir) / "toolgate.yaml"
    (Path(workdir) / "agents.yaml").write_text(AGENTS)
    config.write_text(
        "listen: 127.0.0.1:0\n"
        "upstreams:\n" + upstreams +
        "auth:\n  issuers:\n    - issuer: toolgate-dev\n      audience: toolgate\n"
        f"      jwks_file: \"{JWKS}\"\n      dev: true\n  agents_file: agents.yaml\n"
        "admin:\n  listen: 127.0.0.1:0\n"
        f"policy:\n  dir: \"{policy_dir}\"\n  manifests: \"{manifests_dir}\"\n"
    )
    log = open(Path(workdir) / "toolgate.log", "w")
    gw = subprocess.Popen(
        [str(TOOLGATE), "serve", "--dev", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    procs.append(gw)
    try:
        line = gw.stdout.readline()
        while line and not line.startswith("toolgate listening on "):
            line = gw.stdout.readline()
        assert line.startswith("toolgate listening on "), line
        url = line.split()[-1]
        base = url.rsplit("/mcp", 1)[0]
        deadline = time.time() + 60
        import urllib.request

        while True:
            try:
                with urllib.request.urlopen(base + "/readyz") as r:
                    if r.status == 200:
                        break
            except Exception:
                pass
            if time.time() > deadline:
                raise TimeoutError("toolgate not ready: " + (Path(workdir) / "toolgate.log").read_text())
            time.sleep(0.2)
        yield url
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.fixture(scope="module")
def redacting_gateway():
    """The HR directory behind a policy that redacts results to `internal`, with the quickstart's manifests."""
    hr = ROOT / "target" / "debug" / "examples" / "hr_directory"
    upstreams = f"  - name: hr\n    stdio:\n      command: \"{hr}\"\n"
    yield from serve(upstreams, ROOT / "tests" / "fixtures" / "policy-internal", ROOT / "tool-manifests", [])


def token() -> str:
    return subprocess.check_output([str(TOOLGATE), "token", "--agent", "interop"], text=True).strip()


async def with_session(url, fn, bearer=None):
    headers = {"Authorization": f"Bearer {bearer or token()}"}
    async with streamable_http_client(url, http_client=create_mcp_http_client(headers=headers)) as (read, write, *_):
        async with ClientSession(read, write) as session:
            info = await session.initialize()
            assert info.server_info.name == "toolgate"
            return await fn(session)


def run(url, fn):
    return asyncio.run(with_session(url, fn))


def test_lists_third_party_tools_namespaced(gateway):
    async def body(session):
        tools = (await session.list_tools()).tools
        return {t.name: t for t in tools}

    tools = run(gateway, body)
    assert "time__get_current_time" in tools
    assert "time__convert_time" in tools
    assert "everything__echo" in tools
    assert "everything__get-sum" in tools
    assert tools["time__get_current_time"].input_schema["properties"]["timezone"]


def test_calls_stdio_third_party_upstream(gateway):
    async def body(session):
        return await session.call_tool("time__get_current_time", {"timezone": "UTC"})

    result = run(gateway, body)
    assert not result.is_error
    payload = json.loads(result.content[0].text)
    assert payload["timezone"] == "UTC"


def test_calls_http_third_party_upstream(gateway):
    async def body(session):
        echo = await session.call_tool("everything__echo", {"message": "through toolgate"})
        total = await session.call_tool("everything__get-sum", {"a": 2, "b": 40})
        return echo, total

    echo, total = run(gateway, body)
    assert not echo.is_error
    assert "through toolgate" in echo.content[0].text
    assert "42" in total.content[0].text


def test_unknown_tool_is_an_error(gateway):
    async def body(session):
        try:
            await session.call_tool("everything__no-such-tool", {})
        except Exception as e:  # the SDK raises on JSON-RPC errors
            return str(e)
        return None

    message = run(gateway, body)
    assert message is not None and "Unknown tool" in message


def test_requests_without_a_valid_token_are_refused(gateway):
    import urllib.error
    import urllib.request

    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"}).encode()
    request = urllib.request.Request(gateway, data=body, headers={"Content-Type": "application/json"})
    try:
        urllib.request.urlopen(request)
        raise AssertionError("accepted without a token")
    except urllib.error.HTTPError as e:
        assert e.code == 401
        assert "resource_metadata=" in e.headers["WWW-Authenticate"]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))


def test_validating_clients_accept_redacted_structured_results(redacting_gateway):
    """The SDK validates structuredContent against the tool's outputSchema: the masked integer salary would fail
    the upstream's own schema, and passes the one toolgate advertises."""
    import jsonschema

    async def body(session):
        tools = {t.name: t for t in (await session.list_tools()).tools}
        result = await session.call_tool("hr__lookup_employee", {"id_or_email": "E1001"})
        return tools["hr__lookup_employee"], result

    tool, result = run(redacting_gateway, body)
    assert not result.is_error, result
    record = result.structured_content
    assert record["name"] == "Ada Lovelace"
    assert record["salary"] == "[REDACTED:confidential]"
    assert record["national_id"] == "[REDACTED:restricted]"
    assert record["email"] == "[REDACTED:confidential]"
    assert "123-45-6789" not in json.dumps(result.model_dump())
    # The advertised schema accepts it; the upstream's own (without the masks) would not.
    jsonschema.validate(record, tool.output_schema)
    original = json.loads(json.dumps(tool.output_schema))
    original["properties"]["salary"] = original["properties"]["salary"]["anyOf"][0]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(record, original)
