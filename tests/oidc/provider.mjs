// A real OpenID Provider (the certified `oidc-provider` package) for Switchboard's sign-in tests.
//
//   node provider.mjs   (settings from the environment, see below)
//
// OIDC_PORT            port on 127.0.0.1
// OIDC_CLIENT_ID/SECRET the one static client
// OIDC_REDIRECT_URIS   its redirect URIs, comma-separated
// OIDC_POST_LOGOUT_URIS its post-logout redirect URIs, comma-separated
// OIDC_ACCOUNTS_FILE   JSON {"<login>": {"password", "email", "name", "groups": [...], "disabled"}},
//                      read at every login, so a test changes someone's groups by rewriting it
//
// The login page is a plain form (login, password). Consent is implied for the one client.
// Test controls (POST, only on this loopback test server):
//   /test/tamper {"mode": "expired"|"audience"|"signature"|"rotate"|""} changes the ID token of
//   the next token responses: re-signed with the provider's own key but expired or for another
//   audience, signed by a key the JWKS does not hold, or signed by a new key the JWKS starts
//   serving (key rotation).
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

import * as jose from 'jose';
import Provider from 'oidc-provider';

const port = Number(process.env.OIDC_PORT);
const issuer = `http://127.0.0.1:${port}`;
const list = (name) => (process.env[name] || '').split(',').filter(Boolean);

const signingKey = await jose.generateKeyPair('RS256', { extractable: true });
const signingJwk = { ...(await jose.exportJWK(signingKey.privateKey)), kid: 'key-1', alg: 'RS256', use: 'sig' };
const rotatedKey = await jose.generateKeyPair('RS256', { extractable: true });
const rotatedJwk = { ...(await jose.exportJWK(rotatedKey.publicKey)), kid: 'key-2', alg: 'RS256', use: 'sig' };
const strangerKey = await jose.generateKeyPair('RS256', { extractable: true });

let tamperMode = '';
let rotated = false;

function accounts() {
  return JSON.parse(readFileSync(process.env.OIDC_ACCOUNTS_FILE, 'utf8'));
}

function findLiveAccount(login) {
  const account = accounts()[login];
  return account && !account.disabled ? account : undefined;
}

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: process.env.OIDC_CLIENT_ID,
      client_secret: process.env.OIDC_CLIENT_SECRET,
      redirect_uris: list('OIDC_REDIRECT_URIS'),
      post_logout_redirect_uris: list('OIDC_POST_LOGOUT_URIS'),
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  jwks: { keys: [signingJwk] },
  cookies: { keys: ['test-cookie-key'] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    groups: ['groups'],
  },
  scopes: ['openid', 'email', 'profile', 'groups'],
  // Claims in the ID token itself (as Keycloak's and Entra ID's group claims are).
  conformIdTokenClaims: false,
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: {
      enabled: true,
      // A plain confirmation page (the default one loads web fonts from the internet).
      async logoutSource(ctx, form) {
        ctx.body = page(`<h1>Sign out of the test provider?</h1>${form}
<button type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>`);
      },
    },
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  ttl: { AccessToken: 600, AuthorizationCode: 60, IdToken: 600, Interaction: 600, Session: 3600, Grant: 3600 },
  async findAccount(ctx, sub) {
    const account = findLiveAccount(sub);
    if (!account) return undefined;
    return {
      accountId: sub,
      async claims() {
        return {
          sub,
          email: account.email,
          email_verified: true,
          name: account.name || sub,
          preferred_username: sub,
          groups: account.groups || [],
        };
      },
    };
  },
  // One first-party client: consent is implied, no consent page.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) {
      const grant = await ctx.oidc.provider.Grant.find(grantId);
      if (grant) return grant;
    }
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid email profile groups');
    await grant.save();
    return grant;
  },
});

function page(body) {
  return `<!doctype html><html><head><meta charset="utf-8"><title>Test provider sign-in</title><link rel="icon" href="data:,"></head><body>${body}</body></html>`;
}

function escape(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function loginForm(uid, error) {
  return page(`<h1>Test provider</h1>${error ? `<p id="error">${escape(error)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login">
<label>Login <input name="login" autocomplete="username"></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<button type="submit">Sign in</button></form>`);
}

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

async function resign(idToken) {
  const claims = jose.decodeJwt(idToken);
  const now = Math.floor(Date.now() / 1000);
  let key = signingKey.privateKey;
  let kid = 'key-1';
  if (tamperMode === 'expired') {
    claims.iat = now - 7200;
    claims.exp = now - 3600;
  } else if (tamperMode === 'audience') {
    claims.aud = 'someone-else';
    claims.azp = process.env.OIDC_CLIENT_ID; // only the audience is wrong
  } else if (tamperMode === 'signature') {
    key = strangerKey.privateKey; // same kid, a key the JWKS does not hold
  } else if (tamperMode === 'rotate') {
    rotated = true;
    key = rotatedKey.privateKey;
    kid = 'key-2';
  }
  return new jose.SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' }).sign(key);
}

// Test-only rewriting of the token and JWKS responses (see the header comment).
provider.use(async (ctx, next) => {
  await next();
  if (ctx.path === '/token' && tamperMode && ctx.body && ctx.body.id_token) {
    ctx.body = { ...ctx.body, id_token: await resign(ctx.body.id_token) };
  }
  if (ctx.path === '/jwks' && rotated && ctx.body && ctx.body.keys) {
    ctx.body = { keys: [...ctx.body.keys, rotatedJwk] };
  }
});

// The login page.
provider.use(async (ctx, next) => {
  const match = ctx.path.match(/^\/interaction\/([^/]+)(\/login)?$/);
  if (!match) return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (ctx.method === 'GET') {
    ctx.type = 'html';
    ctx.body = loginForm(details.uid, '');
    return undefined;
  }
  const form = new URLSearchParams(await readBody(ctx.req));
  const login = form.get('login') || '';
  const account = findLiveAccount(login);
  if (!account || account.password !== form.get('password')) {
    ctx.status = 401;
    ctx.type = 'html';
    ctx.body = loginForm(details.uid, 'Wrong login or password.');
    return undefined;
  }
  await provider.interactionFinished(ctx.req, ctx.res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
  ctx.respond = false;
  return undefined;
});

const handle = provider.callback();
const server = createServer(async (req, res) => {
  if (req.method === 'POST' && req.url === '/test/tamper') {
    tamperMode = JSON.parse(await readBody(req)).mode || '';
    res.writeHead(204).end();
    return;
  }
  handle(req, res);
});
server.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
