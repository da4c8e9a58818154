// An OIDC token mint for the tests: npm `oauth2-mock-server` on 127.0.0.1.
//
//   node mock-oidc.mjs PORT
//
// Serves discovery (/.well-known/openid-configuration) and the JWKS (/jwks) of one fresh
// RS256 key, and mints tokens at POST /token. A JSON body may carry `claims`: they are merged
// into the token's payload, and a claim set to null is removed (to mint tokens without `sub`,
// with an `exp` in the past, and so on). Test use only: it accepts any client.
import { Events, OAuth2Server } from 'oauth2-mock-server';

const port = Number.parseInt(process.argv[2] ?? '', 10);
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: node mock-oidc.mjs PORT');
  process.exit(2);
}

const server = new OAuth2Server();
await server.issuer.keys.generate('RS256');
server.service.on(Events.BeforeTokenSigning, (token, req) => {
  const claims = req.body?.claims;
  if (claims === null || typeof claims !== 'object') return;
  for (const [name, value] of Object.entries(claims)) {
    if (value === null) delete token.payload[name];
    else token.payload[name] = value;
  }
});
await server.start(port, '127.0.0.1');
// The library advertises the host it was given; make it the exact issuer the tests register.
server.issuer.url = `http://127.0.0.1:${port}`;
console.log(`mock-oidc listening on ${server.issuer.url}`);

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.stop().finally(() => process.exit(0));
  });
}
