// A minimal MCP client over streamable HTTP, with fetch: enough for the console tests to act as a caller
// (initialize, notifications/initialized, tools/call). Answers come as one JSON body or as an event stream.

const PROTOCOL_VERSION = '2025-06-18';

/** A refusal at the HTTP level (`status`) or a JSON-RPC error (`rpcError`). */
export class McpError extends Error {
  constructor(message, { status, body, rpcError } = {}) {
    super(message);
    this.name = 'McpError';
    this.status = status;
    this.body = body;
    this.rpcError = rpcError;
  }
}

export class McpClient {
  /**
   * @param {string} url the gateway's MCP endpoint
   * @param {string} token a bearer token
   */
  constructor(url, token, { timeoutMs = 30_000 } = {}) {
    this.url = url;
    this.token = token;
    this.timeoutMs = timeoutMs;
    this.sessionId = undefined;
    this.protocolVersion = undefined;
    this.nextId = 1;
  }

  /** `initialize`, then `notifications/initialized`; returns the initialize result. */
  async initialize() {
    const result = await this.request('initialize', {
      protocolVersion: PROTOCOL_VERSION,
      capabilities: {},
      clientInfo: { name: 'toolgate-console-tests', version: '0' },
    });
    this.protocolVersion = result?.protocolVersion ?? PROTOCOL_VERSION;
    await this.notify('notifications/initialized');
    return result;
  }

  /** `tools/call`: the JSON-RPC result (a tool's error is a result with `isError: true`). */
  async callTool(name, args = {}) {
    return this.request('tools/call', { name, arguments: args });
  }

  /** A request; its result, or an McpError. */
  async request(method, params) {
    const id = this.nextId++;
    const response = await this.#post({ jsonrpc: '2.0', id, method, params });
    if (method === 'initialize') {
      const session = response.headers.get('mcp-session-id');
      if (session) this.sessionId = session;
    }
    if (response.status === 202 || response.status === 204) {
      throw new McpError(`${method}: HTTP ${response.status} without an answer`, { status: response.status });
    }
    const message = await readAnswer(response, id, this.timeoutMs);
    if (message.error) {
      const { code, message: text } = message.error;
      throw new McpError(`${method}: JSON-RPC error ${code}: ${text}`, {
        status: response.status,
        rpcError: message.error,
      });
    }
    return message.result;
  }

  /** A notification (no answer expected beyond 202). */
  async notify(method, params) {
    const message = { jsonrpc: '2.0', method };
    if (params !== undefined) message.params = params;
    const response = await this.#post(message);
    // Drain whatever body came with it.
    await response.body?.cancel().catch(() => {});
  }

  /** Ends the session (DELETE); errors are ignored. */
  async close() {
    if (!this.sessionId) return;
    try {
      const response = await fetch(this.url, {
        method: 'DELETE',
        headers: this.#headers(),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      await response.body?.cancel().catch(() => {});
    } catch {
      // The session may be gone already.
    }
  }

  #headers() {
    const headers = {
      Authorization: `Bearer ${this.token}`,
      Accept: 'application/json, text/event-stream',
      'Content-Type': 'application/json',
    };
    if (this.sessionId) headers['Mcp-Session-Id'] = this.sessionId;
    if (this.protocolVersion) headers['MCP-Protocol-Version'] = this.protocolVersion;
    return headers;
  }

  async #post(message) {
    const response = await fetch(this.url, {
      method: 'POST',
      headers: this.#headers(),
      body: JSON.stringify(message),
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    if (!response.ok) {
      const body = await response.text().catch(() => '');
      throw new McpError(`${message.method}: HTTP ${response.status}: ${body.slice(0, 500)}`, {
        status: response.status,
        body,
      });
    }
    return response;
  }
}

/** Opens a session: a client that has initialized. */
export async function connect(url, token, options) {
  const client = new McpClient(url, token, options);
  await client.initialize();
  return client;
}

/** The text blocks of a tool result, joined. */
export function resultText(result) {
  return (result?.content ?? [])
    .filter((block) => block?.type === 'text')
    .map((block) => block.text)
    .join('\n');
}

/** The JSON-RPC message answering request `id`, from a JSON body or an event stream. */
async function readAnswer(response, id, timeoutMs) {
  const type = (response.headers.get('content-type') ?? '').toLowerCase();
  if (type.includes('text/event-stream')) return readEventStream(response, id, timeoutMs);
  const text = await response.text();
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new McpError(`not JSON (content-type ${type || 'none'}): ${text.slice(0, 500)}`, {
      status: response.status,
      body: text,
    });
  }
  const found = (Array.isArray(parsed) ? parsed : [parsed]).find((m) => isAnswer(m, id));
  if (!found) throw new McpError(`no answer to request ${id} in: ${text.slice(0, 500)}`, { status: response.status });
  return found;
}

function isAnswer(message, id) {
  return message && typeof message === 'object' && message.id === id && ('result' in message || 'error' in message);
}

/** Reads events until one carries the answer to `id`; then stops reading (the stream may stay open). */
async function readEventStream(response, id, timeoutMs) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const deadline = Date.now() + timeoutMs;
  let buffer = '';
  const seen = [];
  try {
    for (;;) {
      if (Date.now() > deadline) throw new McpError(`no answer to request ${id} within ${timeoutMs} ms`);
      const { value, done } = await reader.read();
      if (value) buffer += decoder.decode(value, { stream: true });
      if (done) buffer += decoder.decode() + '\n\n';
      // Events end with a blank line.
      let end;
      while ((end = blankLine(buffer)) !== null) {
        const [at, length] = end;
        const event = buffer.slice(0, at);
        buffer = buffer.slice(at + length);
        const data = event
          .split(/\r\n|\r|\n/)
          .filter((line) => line.startsWith('data:'))
          .map((line) => line.slice(5).replace(/^ /, ''))
          .join('\n');
        if (!data) continue;
        seen.push(data);
        let message;
        try {
          message = JSON.parse(data);
        } catch {
          continue;
        }
        const found = (Array.isArray(message) ? message : [message]).find((m) => isAnswer(m, id));
        if (found) return found;
      }
      if (done) {
        throw new McpError(`the event stream ended without an answer to request ${id}; it said: ${seen.join(' | ').slice(0, 500)}`, {
          status: response.status,
        });
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

/** Where the first blank line (event end) is in `text`: [index, length], or null. */
function blankLine(text) {
  const match = /\r\n\r\n|\n\n|\r\r/.exec(text);
  return match ? [match.index, match[0].length] : null;
}
