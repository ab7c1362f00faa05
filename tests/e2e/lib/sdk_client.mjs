// The official TypeScript SDK's client as the end-to-end tests use it: a Client on a
// StreamableHTTPClientTransport, every request bounded so that a gateway that swallows a
// response fails a test in seconds, not after the SDK's one-minute default.
import {Client} from '@modelcontextprotocol/sdk/client/index.js';
import {StreamableHTTPClientTransport} from '@modelcontextprotocol/sdk/client/streamableHttp.js';

export const request_options = {
  timeout: 20_000
};

// Connects a new client to `url` and resolves with { client, transport }. `key` is sent as a
// bearer key on every request; `capabilities` are the client's; `install` may register request
// and notification handlers before the handshake (servers may ask for roots, or decide which
// tools to offer, as soon as the session is initialised).
export async function connect_client(
    url, {key, capabilities = {}, install, name = 'mcpgate-e2e'} = {}) {
  const client = new Client({name, version: '1.0.0'}, {capabilities});
  install?.(client);
  const requestInit = key ? {headers: {Authorization: `Bearer ${key}`}} : undefined;
  const transport = new StreamableHTTPClientTransport(new URL(url), {requestInit});
  await client.connect(transport, request_options);
  return {client, transport};
}

// The text items of a tool result, joined by newlines.
export function text_of(result) {
  return result.content.filter((item) => item.type === 'text').map((item) => item.text).join('\n');
}
