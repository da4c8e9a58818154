// npm oidc-provider (OpenID Certified) on 127.0.0.1 for the browser sign-in tests:
//   node oidc-provider.mjs PORT CLIENT_ID CLIENT_SECRET REDIRECT_URI [conform]
// One static confidential client (client_secret_basic; or private_key_jwt with the JWKS in the
// file named by OIDC_CLIENT_JWKS, read at start, the client secret then unused), PKCE required, the development login/consent pages
// (any login name is accepted; the account's claims carry `sub`, `email` and `groups`). Test only.
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const [port, clientId, clientSecret, redirectUri, mode] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;
const jwksFile = process.env.OIDC_CLIENT_JWKS;
const auth = jwksFile
  ? { token_endpoint_auth_method: 'private_key_jwt', jwks: JSON.parse(readFileSync(jwksFile, 'utf8')) }
  : { client_secret: clientSecret, token_endpoint_auth_method: 'client_secret_basic' };

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    ...auth,
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  claims: { openid: ['sub', 'groups'], email: ['email', 'email_verified'] },
  // `conform`: scope claims (email, ...) only from userinfo, as OpenID Connect Core says for
  // the code flow; by default they are in the ID token too.
  conformIdTokenClaims: mode === 'conform',
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: `${id}@example.test`, email_verified: true, groups: ['developers', 'readers'] };
      },
    };
  },
});
provider.proxy = false;
provider.listen(Number(port), '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
