// A small OAuth 2.1 authorization server for the tests, on 127.0.0.1: RFC 8414 metadata, a JWKS
// with an RS256 and an ES256 key, and a token endpoint for the client_credentials grant that
// issues JWT access tokens bound to the `resource` the client asks for (RFC 8707). It can also
// mint tokens directly, for the ones a real server would never issue (expired, for another
// audience, signed by a key it does not publish).
import {createSign, generateKeyPairSync, sign as sign_oneshot} from 'node:crypto';
import http from 'node:http';

function b64url(data) { return Buffer.from(data).toString('base64url'); }

// `clients`: {client_id: {secret, groups, scope}}.
export async function start_auth_server({clients}) {
  const rsa = generateKeyPairSync('rsa', {modulusLength: 2048});
  const ec = generateKeyPairSync('ec', {namedCurve: 'P-256'});
  const ed = generateKeyPairSync('ed25519');
  const stranger = generateKeyPairSync('rsa', {modulusLength: 2048});  // published nowhere
  const keys = {
    rs: {kid: 'rs-1', alg: 'RS256', pair: rsa},
    es: {kid: 'es-1', alg: 'ES256', pair: ec},
    ed: {kid: 'ed-1', alg: 'EdDSA', pair: ed},
    stranger: {kid: 'rs-9', alg: 'RS256', pair: stranger},
  };
  const published = [keys.rs, keys.es, keys.ed].map(
      (k) => ({...k.pair.publicKey.export({format: 'jwk'}), kid: k.kid, alg: k.alg, use: 'sig'}));
  const issued = [];

  let issuer = null;
  function mint(claims, {key = 'rs', kid, header = {}} = {}) {
    const k = keys[key];
    const head = b64url(JSON.stringify({alg: k.alg, typ: 'at+jwt', kid: kid ?? k.kid, ...header}));
    const body = b64url(JSON.stringify({iss: issuer, ...claims}));
    const input = `${head}.${body}`;
    let signature;
    if (k.alg === 'RS256') {
      signature = createSign('SHA256').update(input).sign(k.pair.privateKey);
    } else if (k.alg === 'ES256') {
      signature = sign_oneshot('sha256', Buffer.from(input),
                               {key: k.pair.privateKey, dsaEncoding: 'ieee-p1363'});
    } else {
      signature = sign_oneshot(null, Buffer.from(input), k.pair.privateKey);
    }
    return `${input}.${b64url(signature)}`;
  }

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, issuer);
    const json = (status, body) => {
      res.writeHead(status, {'content-type': 'application/json', 'cache-control': 'no-store'});
      res.end(JSON.stringify(body));
    };
    if (req.method === 'GET' && url.pathname === '/.well-known/oauth-authorization-server/as') {
      return json(200, {
        issuer,
        authorization_endpoint: `${issuer}/authorize`,
        token_endpoint: `${issuer}/token`,
        jwks_uri: `${issuer}/jwks`,
        grant_types_supported: ['client_credentials'],
        token_endpoint_auth_methods_supported: ['client_secret_basic'],
        response_types_supported: ['code'],
        scopes_supported: ['mcp:tools'],
      });
    }
    if (req.method === 'GET' && url.pathname === '/as/jwks') return json(200, {keys: published});
    if (req.method === 'POST' && url.pathname === '/as/token') {
      let text = '';
      for await (const chunk of req) text += chunk;
      const form = new URLSearchParams(text);
      const basic = (req.headers.authorization ?? '').replace(/^Basic /, '');
      const [id, secret] = Buffer.from(basic, 'base64').toString().split(':').map(decodeURIComponent);
      const client = clients[id];
      if (!client || client.secret !== secret) return json(401, {error: 'invalid_client'});
      if (form.get('grant_type') !== 'client_credentials')
        return json(400, {error: 'unsupported_grant_type'});
      const resource = form.get('resource');
      const now = Math.floor(Date.now() / 1000);
      const token = mint({sub: id, aud: resource, iat: now, exp: now + 300,
                          scope: client.scope ?? 'mcp:tools', groups: client.groups},
                         {key: client.key ?? 'rs'});
      issued.push({client: id, resource, scope: form.get('scope')});
      return json(200, {access_token: token, token_type: 'Bearer', expires_in: 300});
    }
    json(404, {error: 'not_found'});
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${server.address().port}/as`;
  // A new RS256 key, published from now on (key rotation); mint with {key: name}.
  function rotate(name, kid) {
    keys[name] = {kid, alg: 'RS256', pair: generateKeyPairSync('rsa', {modulusLength: 2048})};
    published.push({...keys[name].pair.publicKey.export({format: 'jwk'}), kid, alg: 'RS256',
                    use: 'sig'});
  }
  return {
    issuer,
    jwks_url: `${issuer}/jwks`,
    mint,
    rotate,
    issued,
    stop: () => new Promise((resolve) => server.close(resolve)),
  };
}
