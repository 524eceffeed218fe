// Local OIDC identity provider for webid-agent development and tests.
//
// Wraps the `oidc-provider` library so that it only does what webid-agent
// needs from a real IdP: the OAuth 2.0 client_credentials grant, issuing
// RS256-signed JWT access tokens for a configured audience, with client
// authentication by client_secret_basic, client_secret_post or
// private_key_jwt.
//
// Usage:
//   node server.mjs --config idp.json --cert server.pem --key server-key.pem
//                   [--host 127.0.0.1] [--port 0] [--public-host localhost]
//                   [--exit-on-stdin-close]
//
// Prints exactly one line `READY <issuer>` on stdout once it is listening,
// then only logs to stderr. Exits with status 0 on SIGTERM / SIGINT.
//
// Config file (JSON):
// {
//   "path": "/tenant1",                         // issuer path segment
//   "signing_keys": [ <private RSA JWK>, ... ],  // optional, else generated
//   "default_resource": "urn:webid:sts",
//   "resources": [
//     {"indicator": "urn:webid:sts", "audience": "sts.amazonaws.com",
//      "ttl": 300, "scopes": ["api://webid/.default"]}   // scopes optional
//   ],
//   "clients": [
//     {"client_id": "a", "client_secret": "s",
//      "token_endpoint_auth_method": "client_secret_basic",
//      "scopes": ["api://webid/.default"],
//      "ttl": 4,                  // optional, overrides the resource TTL
//      "default_resource": "...", // optional, overrides default_resource
//      "strict_auth_method": true}  // default; false = basic/post both ok
//     {"client_id": "b", "token_endpoint_auth_method": "private_key_jwt",
//      "certificate": "-----BEGIN CERTIFICATE-----..."}  // or "jwks": {...}
//   ]
// }

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as https from 'node:https';
import process from 'node:process';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

// Scopes that some client libraries add on their own; they are accepted
// for every client and never end up in an access token.
const RESERVED_SCOPES = ['openid', 'profile', 'offline_access'];

function fail(message) {
  process.stderr.write(`idp: ${message}\n`);
  process.exit(2);
}

function parseCli() {
  const { values } = parseArgs({
    options: {
      config: { type: 'string' },
      cert: { type: 'string' },
      key: { type: 'string' },
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '0' },
      'public-host': { type: 'string', default: 'localhost' },
      'exit-on-stdin-close': { type: 'boolean', default: false },
    },
    strict: true,
  });
  for (const name of ['config', 'cert', 'key']) {
    if (!values[name]) fail(`--${name} is required`);
  }
  const port = Number.parseInt(values.port, 10);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    fail(`invalid --port ${values.port}`);
  }
  return { ...values, port };
}

function newSigningKey() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: crypto.randomBytes(8).toString('hex'), use: 'sig', alg: 'RS256' };
}

function publicJwksFromCertificate(pem) {
  const cert = new crypto.X509Certificate(pem);
  const jwk = cert.publicKey.export({ format: 'jwk' });
  // x5c lets the provider relate the key to the certificate; no "alg" so
  // that both RS256 and PS256 client assertions are accepted.
  jwk.x5c = [cert.raw.toString('base64')];
  return { keys: [jwk] };
}

function buildClientMetadata(entry) {
  const method = entry.token_endpoint_auth_method
    ?? (entry.client_secret ? 'client_secret_basic' : 'private_key_jwt');
  const scope = [...new Set([...(entry.scopes ?? []), ...RESERVED_SCOPES])].join(' ');
  const metadata = {
    client_id: entry.client_id,
    token_endpoint_auth_method: method,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope,
  };
  if (method === 'private_key_jwt') {
    if (entry.jwks) metadata.jwks = entry.jwks;
    else if (entry.certificate) metadata.jwks = publicJwksFromCertificate(entry.certificate);
    else fail(`client ${entry.client_id}: private_key_jwt needs "jwks" or "certificate"`);
  } else {
    if (!entry.client_secret) fail(`client ${entry.client_id}: missing client_secret`);
    metadata.client_secret = entry.client_secret;
  }
  return metadata;
}

function loadConfig(path) {
  const raw = JSON.parse(fs.readFileSync(path, 'utf8'));
  const resources = new Map();
  for (const r of raw.resources ?? []) {
    if (!r.indicator || !r.audience) fail('each resource needs "indicator" and "audience"');
    resources.set(r.indicator, r);
  }
  if (raw.default_resource && !resources.has(raw.default_resource)) {
    fail(`default_resource ${raw.default_resource} is not a configured resource`);
  }
  const clients = new Map();
  for (const c of raw.clients ?? []) {
    if (!c.client_id) fail('each client needs "client_id"');
    clients.set(c.client_id, c);
  }
  let path_ = raw.path ?? '/tenant1';
  if (!path_.startsWith('/')) path_ = `/${path_}`;
  path_ = path_.replace(/\/+$/, '');
  return {
    path: path_,
    signingKeys: raw.signing_keys?.length ? raw.signing_keys : [newSigningKey()],
    defaultResource: raw.default_resource,
    resources,
    clients,
  };
}

// oidc-provider accepts a client secret in either the Authorization header
// or the body whatever the registered method. Unless a client opts out with
// "strict_auth_method": false, insist on the registered one so that tests
// notice a caller using the wrong method.
function checkSecretTransport(ctx, client, entry) {
  if (entry.strict_auth_method === false) return;
  const method = client.clientAuthMethod;
  const viaHeader = /^basic /i.test(ctx.get('authorization'));
  const viaBody = ctx.oidc.params.client_secret !== undefined;
  let bad = false;
  if (method === 'client_secret_basic') bad = viaBody || !viaHeader;
  if (method === 'client_secret_post') bad = viaHeader || !viaBody;
  if (bad) {
    const err = new errors.InvalidClientAuth();
    err.error_description = `client authentication failed (registered method is ${method})`;
    throw err;
  }
}

function makeProvider(issuer, config) {
  const clientEntry = (client) => config.clients.get(client.clientId) ?? {};

  const allScopes = new Set(RESERVED_SCOPES);
  for (const c of config.clients.values()) (c.scopes ?? []).forEach((s) => allScopes.add(s));
  for (const r of config.resources.values()) (r.scopes ?? []).forEach((s) => allScopes.add(s));

  return new Provider(issuer, {
    clients: [...config.clients.values()].map(buildClientMetadata),
    jwks: { keys: config.signingKeys },
    clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'private_key_jwt'],
    cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
    scopes: [...allScopes],
    clockTolerance: 5,
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: false },
      revocation: { enabled: false },
      resourceIndicators: {
        enabled: true,
        // Used when the token request carries no `resource` parameter, which
        // is what msal and most client_credentials clients send.
        defaultResource(_ctx, client, oneOf) {
          if (oneOf) return oneOf;
          return clientEntry(client).default_resource ?? config.defaultResource;
        },
        useGrantedResource() {
          return true;
        },
        getResourceServerInfo(ctx, indicator, client) {
          // Runs in the token endpoint after client authentication.
          checkSecretTransport(ctx, client, clientEntry(client));
          const resource = config.resources.get(indicator);
          if (!resource) throw new errors.InvalidTarget(`unknown resource ${indicator}`);
          const entry = clientEntry(client);
          const allowed = new Set(entry.scopes ?? []);
          if (resource.scopes) {
            const known = new Set(resource.scopes);
            for (const s of allowed) if (!known.has(s)) allowed.delete(s);
          }
          // Reject scopes this client may not have, instead of silently
          // dropping them from the token.
          const requested = (ctx.oidc.params.scope ?? '').split(' ').filter(Boolean);
          for (const s of requested) {
            if (!allowed.has(s) && !RESERVED_SCOPES.includes(s)) {
              throw new errors.InvalidScope('requested scope is not allowed', s);
            }
          }
          return {
            audience: resource.audience,
            scope: [...allowed].join(' ') || undefined,
            accessTokenTTL: entry.ttl ?? resource.ttl ?? 300,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    ttl: {
      ClientCredentials(_ctx, token) {
        return token.resourceServer?.accessTokenTTL ?? 300;
      },
      AccessToken(_ctx, token) {
        return token.resourceServer?.accessTokenTTL ?? 300;
      },
    },
    clientBasedCORS() {
      return false;
    },
    async renderError(ctx, out) {
      ctx.type = 'json';
      ctx.body = out;
    },
  });
}

function main() {
  const args = parseCli();
  const config = loadConfig(args.config);
  const tls = {
    cert: fs.readFileSync(args.cert),
    key: fs.readFileSync(args.key),
  };

  let handler;
  let issuerHost;
  const server = https.createServer(tls, (req, res) => {
    const url = req.url ?? '/';
    if (!handler || !(url === config.path || url.startsWith(`${config.path}/`)
        || url.startsWith(`${config.path}?`))) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"error":"not_found"}');
      return;
    }
    // Mount the provider under the issuer path; oidc-provider derives the
    // mount path from originalUrl vs url. Endpoint URLs always use the
    // issuer host, whichever loopback address the client connected to.
    req.originalUrl = url;
    req.url = url.slice(config.path.length) || '/';
    req.headers.host = issuerHost;
    handler(req, res);
  });

  server.on('error', (err) => fail(`server error: ${err.message}`));
  server.listen(args.port, args.host, () => {
    const { port } = server.address();
    issuerHost = `${args['public-host']}:${port}`;
    const issuer = `https://${issuerHost}${config.path}`;
    const provider = makeProvider(issuer, config);
    provider.on('server_error', (_ctx, err) => {
      process.stderr.write(`idp: server_error: ${err.stack ?? err}\n`);
    });
    provider.on('grant.error', (_ctx, err) => {
      process.stderr.write(`idp: grant.error: ${err.message} ${err.error_description ?? ''}\n`);
    });
    handler = provider.callback();
    process.stdout.write(`READY ${issuer}\n`);
  });

  let stopping = false;
  const stop = (why) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`idp: stopping (${why})\n`);
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  if (args['exit-on-stdin-close']) {
    process.stdin.on('end', () => stop('stdin closed'));
    process.stdin.on('error', () => stop('stdin error'));
    process.stdin.resume();
  }
}

main();
