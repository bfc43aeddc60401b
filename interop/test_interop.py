"""Interop: the official Python MCP SDK drives toolgate, which fronts third-party upstreams
(mcp-server-time over stdio, @modelcontextprotocol/server-everything over streamable HTTP); so does the
MCP Inspector's CLI."""

import asyncio
import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from mcp import Client, ClientSession, types
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


async def with_session(url, fn, bearer=None, **session_args):
    """Runs `fn` in an initialized session; `session_args` go to ClientSession (e.g. its callbacks)."""
    headers = {"Authorization": f"Bearer {bearer or token()}"}
    async with streamable_http_client(url, http_client=create_mcp_http_client(headers=headers)) as (read, write, *_):
        async with ClientSession(read, write, **session_args) as session:
            info = await session.initialize()
            assert info.server_info.name == "toolgate"
            return await fn(session)


def run(url, fn, **session_args):
    return asyncio.run(with_session(url, fn, **session_args))


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


# Resources, prompts, completion, sampling and elicitation of server-everything, through toolgate. Its name in
# the gateway fixture is `everything`, so its tools and prompts are `everything__<name>` and its resources
# `toolgate://everything/<its uri>`.

EVERYTHING_DOCS = EVERYTHING.parent / "docs"
PREFIX = "toolgate://everything/"
TEXT_TEMPLATE = "demo://resource/dynamic/text/{resourceId}"
BLOB_TEMPLATE = "demo://resource/dynamic/blob/{resourceId}"
SAMPLING_TOOL = "everything__trigger-sampling-request"
ELICITATION_TOOL = "everything__trigger-elicitation-request"
EVERYTHING_PROMPTS = {
    "everything__simple-prompt",
    "everything__args-prompt",
    "everything__completable-prompt",
    "everything__resource-prompt",
}


def everything_documents() -> dict:
    """The static resources server-everything serves: one per file of its docs folder, URI -> file."""
    files = sorted(p for p in EVERYTHING_DOCS.iterdir() if p.is_file())
    assert files, f"no documents in {EVERYTHING_DOCS}"
    # The file name is encoded as encodeURIComponent does, as the server builds the URI.
    return {PREFIX + "demo://resource/static/document/" + quote(p.name, safe="!'()*-._~"): p for p in files}


def test_lists_third_party_resources_under_toolgate_uris(gateway):
    async def body(session):
        assert session.server_capabilities.resources is not None
        return (await session.list_resources()).resources

    resources = run(gateway, body)
    documents = everything_documents()
    assert {r.uri for r in resources} == set(documents)
    by_uri = {r.uri: r for r in resources}
    features = by_uri[f"{PREFIX}demo://resource/static/document/features.md"]
    assert features.name == "features.md"
    assert features.mime_type == "text/markdown"
    assert features.description == "Static document file exposed from /docs: features.md"


def test_reads_a_third_party_text_resource(gateway):
    uri = f"{PREFIX}demo://resource/static/document/features.md"

    async def body(session):
        return (await session.read_resource(uri)).contents

    [content] = run(gateway, body)
    assert isinstance(content, types.TextResourceContents)
    assert content.uri == uri
    assert content.mime_type == "text/markdown"
    assert content.text == (EVERYTHING_DOCS / "features.md").read_text()


def test_lists_third_party_resource_templates_and_reads_through_them(gateway):
    async def body(session):
        templates = (await session.list_resource_templates()).resource_templates
        text = (await session.read_resource(f"{PREFIX}demo://resource/dynamic/text/12")).contents
        blob = (await session.read_resource(f"{PREFIX}demo://resource/dynamic/blob/5")).contents
        return templates, text, blob

    templates, [text], [blob] = run(gateway, body)
    by_template = {t.uri_template: t for t in templates}
    assert set(by_template) == {PREFIX + TEXT_TEMPLATE, PREFIX + BLOB_TEMPLATE}
    assert by_template[PREFIX + TEXT_TEMPLATE].name == "Dynamic Text Resource"
    assert by_template[PREFIX + TEXT_TEMPLATE].mime_type == "text/plain"
    assert by_template[PREFIX + BLOB_TEMPLATE].name == "Dynamic Blob Resource"
    assert by_template[PREFIX + BLOB_TEMPLATE].mime_type == "application/octet-stream"

    assert isinstance(text, types.TextResourceContents)
    assert text.uri == f"{PREFIX}demo://resource/dynamic/text/12"
    assert text.text.startswith("Resource 12: This is a plaintext resource created at ")

    assert isinstance(blob, types.BlobResourceContents)
    assert blob.uri == f"{PREFIX}demo://resource/dynamic/blob/5"
    assert base64.b64decode(blob.blob).decode().startswith("Resource 5: This is a base64 blob created at ")


def test_upstream_resource_uris_are_not_readable_unprefixed(gateway):
    async def body(session):
        try:
            await session.read_resource("demo://resource/static/document/features.md")
        except Exception as e:
            return e
        return None

    error = run(gateway, body)
    assert error is not None, "an unprefixed URI of a prefixed upstream was read"
    assert error.error.code == -32002
    assert error.error.message == "Resource not found"


def test_lists_and_gets_third_party_prompts(gateway):
    async def body(session):
        assert session.server_capabilities.prompts is not None
        prompts = (await session.list_prompts()).prompts
        simple = await session.get_prompt("everything__simple-prompt")
        args = await session.get_prompt("everything__args-prompt", {"city": "Paris", "state": "Texas"})
        embedded = await session.get_prompt("everything__resource-prompt", {"resourceType": "Text", "resourceId": "4"})
        return prompts, simple, args, embedded

    prompts, simple, args, embedded = run(gateway, body)
    by_name = {p.name: p for p in prompts}
    assert set(by_name) == EVERYTHING_PROMPTS
    assert [(a.name, a.required) for a in by_name["everything__args-prompt"].arguments] == [
        ("city", True),
        ("state", False),
    ]
    assert [a.name for a in by_name["everything__completable-prompt"].arguments] == ["department", "name"]

    assert [m.content.text for m in simple.messages] == ["This is a simple prompt without arguments."]
    [message] = args.messages
    assert message.role == "user"
    assert message.content.text == "What's weather in Paris, Texas?"

    intro, resource = embedded.messages
    assert intro.content.text.startswith("This prompt includes the Text resource with id: 4.")
    assert isinstance(resource.content, types.EmbeddedResource)
    # A resource embedded in a prompt carries the URI the client can read it under.
    assert resource.content.resource.uri == f"{PREFIX}demo://resource/dynamic/text/4"
    assert resource.content.resource.text.startswith("Resource 4: This is a plaintext resource created at ")


def test_completes_third_party_prompt_and_template_arguments(gateway):
    prompt = types.PromptReference(type="ref/prompt", name="everything__completable-prompt")
    template = types.ResourceTemplateReference(type="ref/resource", uri=PREFIX + TEXT_TEMPLATE)

    async def body(session):
        assert session.server_capabilities.completions is not None
        departments = await session.complete(prompt, {"name": "department", "value": "S"})
        # The second argument's values depend on the first, passed as context.
        leads = await session.complete(prompt, {"name": "name", "value": ""}, {"department": "Engineering"})
        narrowed = await session.complete(prompt, {"name": "name", "value": "B"}, {"department": "Engineering"})
        ids = await session.complete(template, {"name": "resourceId", "value": "7"})
        return departments, leads, narrowed, ids

    departments, leads, narrowed, ids = run(gateway, body)
    assert departments.completion.values == ["Sales", "Support"]
    assert leads.completion.values == ["Alice", "Bob", "Charlie"]
    assert narrowed.completion.values == ["Bob"]
    assert ids.completion.values == ["7"]


def sampled_answer(text: str) -> types.CreateMessageResult:
    return types.CreateMessageResult(
        role="assistant",
        content=types.TextContent(type="text", text=text),
        model="interop-model",
        stop_reason="endTurn",
    )


def test_sampling_request_is_relayed_to_the_calling_client(gateway):
    asked = []

    async def sampling(context, params):
        asked.append((context.request_id, params))
        return sampled_answer("Six times seven is 42.")

    async def body(session):
        arguments = {"prompt": "What is six times seven?", "maxTokens": 64}
        return await asyncio.wait_for(session.call_tool(SAMPLING_TOOL, arguments), 30)

    result = run(gateway, body, sampling_callback=sampling)
    assert not result.is_error, result
    [(request_id, params)] = asked
    # Asked under toolgate's own request id, not the upstream's.
    assert str(request_id).startswith("toolgate-")
    assert params.system_prompt == "You are a helpful test server."
    assert params.max_tokens == 64
    [message] = params.messages
    assert message.role == "user"
    assert message.content.text == "Resource trigger-sampling-request context: What is six times seven?"

    # The upstream got the callback's answer and put it in the tool result.
    [content] = result.content
    prefix = "LLM sampling result: \n"
    assert content.text.startswith(prefix), content.text
    assert json.loads(content.text[len(prefix):]) == {
        "model": "interop-model",
        "stopReason": "endTurn",
        "role": "assistant",
        "content": {"type": "text", "text": "Six times seven is 42."},
    }


def test_sampling_request_keeps_the_upstreams_temperature(gateway):
    asked = []

    async def sampling(context, params):
        asked.append(params)
        return sampled_answer("ok")

    async def body(session):
        return await asyncio.wait_for(session.call_tool(SAMPLING_TOOL, {"prompt": "p", "maxTokens": 8}), 30)

    result = run(gateway, body, sampling_callback=sampling)
    assert not result.is_error, result
    [params] = asked
    assert params.temperature == 0.7  # what server-everything sends


def test_elicitation_request_is_relayed_to_the_calling_client(gateway):
    asked = []
    answers = iter(
        [
            types.ElicitResult(action="accept", content={"name": "Grace Hopper", "check": True, "integer": 7}),
            types.ElicitResult(action="decline"),
        ]
    )

    async def elicitation(context, params):
        asked.append((context.request_id, params))
        return next(answers)

    async def body(session):
        accepted = await asyncio.wait_for(session.call_tool(ELICITATION_TOOL, {}), 30)
        declined = await asyncio.wait_for(session.call_tool(ELICITATION_TOOL, {}), 30)
        return accepted, declined

    accepted, declined = run(gateway, body, elicitation_callback=elicitation)
    assert len(asked) == 2
    request_id, params = asked[0]
    assert str(request_id).startswith("toolgate-")
    assert isinstance(params, types.ElicitRequestFormParams)
    assert params.message == "Please provide inputs for the following fields:"
    schema = params.requested_schema
    assert schema["required"] == ["name"]
    assert schema["properties"]["name"] == {
        "title": "String",
        "type": "string",
        "description": "Your full, legal name",
    }
    assert schema["properties"]["integer"]["default"] == 42
    assert schema["properties"]["untitledSingleSelectEnum"]["enum"] == [
        "Monica",
        "Rachel",
        "Joey",
        "Chandler",
        "Ross",
        "Phoebe",
    ]
    assert len(schema["properties"]) == 13

    assert not accepted.is_error, accepted
    texts = [c.text for c in accepted.content]
    assert texts[0] == "✅ User provided the requested information!"
    assert texts[1] == "User inputs:\n- Name: Grace Hopper\n- Agreed to terms: true\n- Favorite Integer: 7"

    assert not declined.is_error, declined
    assert declined.content[0].text == "❌ User declined to provide the requested information."


def test_a_client_without_the_capability_gets_an_error_result_not_a_request(gateway):
    """A client that declared neither sampling nor elicitation is never asked: the upstream's request is refused
    and its tool answers with an error, at once. Another connected client that could answer is not asked either."""
    other_asked = []

    async def other_sampling(context, params):
        other_asked.append(params)
        return sampled_answer("not from the caller")

    async def other_elicitation(context, params):
        other_asked.append(params)
        return types.ElicitResult(action="decline")

    async def without_capabilities(session):
        sampled = await asyncio.wait_for(session.call_tool(SAMPLING_TOOL, {"prompt": "p", "maxTokens": 8}), 20)
        elicited = await asyncio.wait_for(session.call_tool(ELICITATION_TOOL, {}), 20)
        echo = await session.call_tool("everything__echo", {"message": "after the refusals"})
        return sampled, elicited, echo

    async def other(session):
        return await with_session(gateway, without_capabilities)

    async def main():
        return await with_session(
            gateway, other, sampling_callback=other_sampling, elicitation_callback=other_elicitation
        )

    sampled, elicited, echo = asyncio.run(main())
    assert sampled.is_error
    assert sampled.content[0].text == "MCP error -32601: the client did not declare the `sampling` capability"
    assert elicited.is_error
    assert elicited.content[0].text == "MCP error -32601: the client did not declare the `elicitation` capability"
    assert other_asked == []
    # The session is still usable.
    assert not echo.is_error
    assert echo.content[0].text == "Echo: after the refusals"


# Protocol revision 2026-07-28 ("modern": stateless requests, `_meta` on each) through toolgate, with the Python
# SDK's modern client. The fixture's upstreams speak 2025-11-25: toolgate maps between the two, an upstream's
# sampling and elicitation requests included (they reach the client as `input_required` results).


async def with_modern_client(url, fn, mode="2026-07-28", bearer=None, **client_args):
    """Runs `fn` with the SDK's high-level client in `mode` (`2026-07-28`, or `auto`: `server/discover` first)."""
    headers = {"Authorization": f"Bearer {bearer or token()}"}
    async with create_mcp_http_client(headers=headers) as http, Client(
        streamable_http_client(url, http_client=http), mode=mode, **client_args
    ) as client:
        assert client.protocol_version == "2026-07-28"
        return await fn(client)


def run_modern(url, fn, **client_args):
    return asyncio.run(with_modern_client(url, fn, **client_args))


def test_modern_client_discovers_toolgate_in_auto_mode(gateway):
    async def body(client):
        return client.server_info, client.server_capabilities

    info, capabilities = run_modern(gateway, body, mode="auto")
    assert info.name == "toolgate"
    assert capabilities.tools is not None and capabilities.resources is not None and capabilities.prompts is not None


def test_modern_client_lists_calls_reads_and_gets(gateway):
    uri = f"{PREFIX}demo://resource/static/document/features.md"

    async def body(client):
        tools = {t.name for t in (await client.list_tools()).tools}
        total = await client.call_tool("everything__get-sum", {"a": 19, "b": 23})
        now = await client.call_tool("time__get_current_time", {"timezone": "UTC"})
        read = await client.read_resource(uri)
        prompt = await client.get_prompt("everything__args-prompt", {"city": "Oslo", "state": "Nordland"})
        return tools, total, now, read, prompt

    tools, total, now, read, prompt = run_modern(gateway, body)
    assert {"time__get_current_time", "everything__get-sum", "everything__echo"} <= tools
    assert not total.is_error and total.content[0].text == "The sum of 19 and 23 is 42."
    assert not now.is_error and now.structured_content["timezone"] == "UTC"
    [content] = read.contents
    assert content.uri == uri and content.text == (EVERYTHING_DOCS / "features.md").read_text()
    [message] = prompt.messages
    assert message.content.text == "What's weather in Oslo, Nordland?"


def test_modern_client_answers_a_legacy_upstreams_sampling_and_elicitation(gateway):
    asked = []

    async def sampling(context, params):
        asked.append(("sampling", params))
        return sampled_answer("Six times seven is 42.")

    async def elicitation(context, params):
        asked.append(("elicitation", params))
        return types.ElicitResult(action="accept", content={"name": "Grace Hopper", "check": True, "integer": 7})

    async def body(client):
        sampled = await asyncio.wait_for(
            client.call_tool(SAMPLING_TOOL, {"prompt": "What is six times seven?", "maxTokens": 64}), 30
        )
        elicited = await asyncio.wait_for(client.call_tool(ELICITATION_TOOL, {}), 30)
        return sampled, elicited

    sampled, elicited = run_modern(gateway, body, sampling_callback=sampling, elicitation_callback=elicitation)
    assert [kind for kind, _ in asked] == ["sampling", "elicitation"]
    assert asked[0][1].messages[0].content.text.endswith("What is six times seven?")
    assert asked[0][1].temperature == 0.7  # what server-everything sends, kept through the mapping
    assert not sampled.is_error, sampled
    assert json.loads(sampled.content[0].text[len("LLM sampling result: \n"):])["content"]["text"] == (
        "Six times seven is 42."
    )
    assert not elicited.is_error, elicited
    assert elicited.content[1].text == "User inputs:\n- Name: Grace Hopper\n- Agreed to terms: true\n- Favorite Integer: 7"


def test_modern_client_without_the_capability_is_not_asked(gateway):
    async def body(client):
        return await asyncio.wait_for(client.call_tool(SAMPLING_TOOL, {"prompt": "p", "maxTokens": 8}), 20)

    sampled = run_modern(gateway, body)
    assert sampled.is_error
    assert "did not declare the `sampling` capability" in sampled.content[0].text


def test_modern_client_listens_for_list_changes(gateway):
    async def body(client):
        async with client.listen(tools_list_changed=True, prompts_list_changed=True) as subscription:
            return subscription.honored

    honored = run_modern(gateway, body)
    assert honored.tools_list_changed and honored.prompts_list_changed


def test_modern_requests_without_a_valid_token_are_refused(gateway):
    async def body(client):
        return await client.list_tools()

    with pytest.raises(Exception) as refused:
        run_modern(gateway, body, bearer="not-a-token")
    errors, found = [refused.value], []
    while errors:
        error = errors.pop()
        errors.extend(getattr(error, "exceptions", []))
        if getattr(error, "error", None) is not None:
            found.append(error.error)
    [error] = found
    assert error.code == -32001 and error.data == {"reason": "token_malformed"}, error


# The MCP Inspector's CLI (Node >= 22) in front of toolgate.

INSPECTOR = ROOT / "interop" / "node_modules" / "@modelcontextprotocol" / "inspector"


def node22() -> str:
    """Node 22: TOOLGATE_NODE22 (scripts/test sets it), else what scripts/node22 installs."""
    path = os.environ.get("TOOLGATE_NODE22")
    if not path:
        path = subprocess.check_output([str(ROOT / "scripts" / "node22")], text=True).strip()
    assert subprocess.check_output([path, "--version"], text=True).startswith("v22."), path
    return path


def inspector_entry() -> Path:
    """The Inspector's launcher, from its package.json `bin` (`--cli` selects the CLI)."""
    package = json.loads((INSPECTOR / "package.json").read_text())
    assert package["version"] == json.loads((ROOT / "interop" / "package.json").read_text())["dependencies"][
        "@modelcontextprotocol/inspector"
    ]
    bin = package["bin"]
    return INSPECTOR / (bin if isinstance(bin, str) else bin["mcp-inspector"])


def inspector(url, *args, bearer, expect=0):
    """Runs the Inspector CLI against toolgate over streamable HTTP with this bearer token (none when empty);
    returns its JSON output: the result, or the error when it is expected to exit with `expect`."""
    auth = ["--header", f"Authorization: Bearer {bearer}"] if bearer else []
    with tempfile.TemporaryDirectory() as home:
        proc = subprocess.run(
            [node22(), str(inspector_entry()), "--cli", "--server-url", url, "--transport", "http", *auth,
             "--stored-auth-only", *args, "--format", "json"],
            env={**os.environ, "HOME": home},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == expect, (proc.returncode, proc.stdout, proc.stderr)
    return json.loads(proc.stdout if expect == 0 else proc.stderr)


def test_inspector_cli_lists_tools(gateway):
    async def body(session):
        return {t.name for t in (await session.list_tools()).tools}

    listed = {t["name"] for t in inspector(gateway, "--method", "tools/list", bearer=token())["result"]["tools"]}
    assert {"time__get_current_time", "time__convert_time", "everything__echo", "everything__get-sum"} <= listed
    assert listed == run(gateway, body)


def test_inspector_cli_calls_tools(gateway):
    bearer = token()
    total = inspector(
        gateway, "--method", "tools/call", "--tool-name", "everything__get-sum", "--tool-arg", "a=19", "b=23",
        bearer=bearer,
    )["result"]
    assert total["content"] == [{"type": "text", "text": "The sum of 19 and 23 is 42."}]

    converted = inspector(
        gateway, "--method", "tools/call", "--tool-name", "time__convert_time",
        "--tool-arg", "source_timezone=UTC", "time=12:30", "target_timezone=Asia/Tokyo",
        bearer=bearer,
    )["result"]
    assert converted["isError"] is False
    assert converted["structuredContent"]["target"]["timezone"] == "Asia/Tokyo"
    assert converted["structuredContent"]["target"]["datetime"].endswith("T21:30:00+09:00")
    assert converted["structuredContent"]["time_difference"] == "+9.0h"


def test_inspector_cli_lists_and_reads_resources(gateway):
    bearer = token()
    resources = inspector(gateway, "--method", "resources/list", bearer=bearer)["result"]["resources"]
    assert {r["uri"] for r in resources} == set(everything_documents())

    uri = f"{PREFIX}demo://resource/static/document/architecture.md"
    [content] = inspector(gateway, "--method", "resources/read", "--uri", uri, bearer=bearer)["result"]["contents"]
    assert content["uri"] == uri
    assert content["text"] == (EVERYTHING_DOCS / "architecture.md").read_text()


def test_inspector_cli_lists_and_gets_prompts(gateway):
    bearer = token()
    prompts = inspector(gateway, "--method", "prompts/list", bearer=bearer)["result"]["prompts"]
    assert {p["name"] for p in prompts} == EVERYTHING_PROMPTS

    got = inspector(
        gateway, "--method", "prompts/get", "--prompt-name", "everything__args-prompt",
        "--prompt-args", "city=Oslo", "state=Nordland",
        bearer=bearer,
    )["result"]
    [message] = got["messages"]
    assert message == {"role": "user", "content": {"type": "text", "text": "What's weather in Oslo, Nordland?"}}


def test_inspector_cli_without_a_token_is_refused(gateway):
    error = inspector(gateway, "--method", "tools/list", bearer="", expect=3)["error"]
    assert error["code"] == "auth_required"
    assert "token_missing" in error["message"]


def test_inspector_cli_in_the_modern_era(gateway):
    """The Inspector pinned to 2026-07-28: discovery, then stateless requests; the same answers as in a session."""
    bearer = token()
    modern = ("--protocol-era", "modern")
    listed = {t["name"] for t in inspector(gateway, *modern, "--method", "tools/list", bearer=bearer)["result"]["tools"]}
    assert {"time__get_current_time", "everything__echo", "everything__get-sum"} <= listed
    total = inspector(
        gateway, *modern, "--method", "tools/call", "--tool-name", "everything__get-sum", "--tool-arg", "a=19", "b=23",
        bearer=bearer,
    )["result"]
    assert total["content"] == [{"type": "text", "text": "The sum of 19 and 23 is 42."}]
    uri = f"{PREFIX}demo://resource/static/document/architecture.md"
    read = inspector(gateway, *modern, "--method", "resources/read", "--uri", uri, bearer=bearer)["result"]
    [content] = read["contents"]
    assert content["text"] == (EVERYTHING_DOCS / "architecture.md").read_text()
    assert read["cacheScope"] == "private"
    got = inspector(
        gateway, *modern, "--method", "prompts/get", "--prompt-name", "everything__args-prompt",
        "--prompt-args", "city=Oslo", "state=Nordland", bearer=bearer,
    )["result"]
    assert got["messages"][0]["content"]["text"] == "What's weather in Oslo, Nordland?"
    # Auto: the Inspector finds the modern revision on its own.
    auto = inspector(gateway, "--protocol-era", "auto", "--method", "tools/list", bearer=bearer)["result"]["tools"]
    assert {t["name"] for t in auto} == listed
    refused = inspector(gateway, *modern, "--method", "tools/list", bearer="", expect=3)["error"]
    assert refused["code"] == "auth_required"
