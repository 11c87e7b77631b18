// Checks that unmodified, standard Amazon Cognito clients work against
// fieldline-relay: the AWS SDK for JavaScript v3
// (@aws-sdk/client-cognito-identity-provider) and amazon-cognito-identity-js
// (the library under Amplify's older Auth; USER_SRP_AUTH by default).
//
// Usage: node verify.mjs URL POOL_ID CLIENT_ID DATA_DIR
//   or set FIELDLINE_URL, FIELDLINE_POOL_ID, FIELDLINE_CLIENT_ID and
//   FIELDLINE_DATA_DIR.  Confirmation and reset codes are read from
//   DATA_DIR/outbox/*.eml.
//
// Output is TAP; the exit status is non-zero if any check fails.

import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

import {
  CognitoIdentityProviderClient,
  SignUpCommand,
  ConfirmSignUpCommand,
  InitiateAuthCommand,
  GetUserCommand,
  ChangePasswordCommand,
  ForgotPasswordCommand,
  ConfirmForgotPasswordCommand,
  GlobalSignOutCommand,
} from '@aws-sdk/client-cognito-identity-provider';
import AmazonCognitoIdentity from 'amazon-cognito-identity-js';

const {
  AuthenticationDetails,
  CognitoUser,
  CognitoUserAttribute,
  CognitoUserPool,
} = AmazonCognitoIdentity;

/* ---- arguments ----------------------------------------------------------- */

const [argUrl, argPool, argClient, argDataDir] = process.argv.slice(2);
const url = argUrl ?? process.env.FIELDLINE_URL;
const poolId = argPool ?? process.env.FIELDLINE_POOL_ID;
const clientId = argClient ?? process.env.FIELDLINE_CLIENT_ID;
const dataDir = argDataDir ?? process.env.FIELDLINE_DATA_DIR;

if (!url || !poolId || !clientId || !dataDir) {
  console.error('usage: node verify.mjs URL POOL_ID CLIENT_ID DATA_DIR');
  console.error('   (or FIELDLINE_URL, FIELDLINE_POOL_ID, FIELDLINE_CLIENT_ID, FIELDLINE_DATA_DIR)');
  process.exit(2);
}

const outboxDir = join(dataDir, 'outbox');

/* ---- TAP ----------------------------------------------------------------- */

const checks = [];
function check(name, fn) {
  checks.push({ name, fn });
}

function yamlBlock(fields) {
  const lines = ['  ---'];
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    const text = typeof value === 'string' ? value : JSON.stringify(value);
    if (text.includes('\n')) {
      lines.push(`  ${key}: |`);
      for (const l of text.split('\n')) lines.push(`    ${l}`);
    } else {
      lines.push(`  ${key}: ${JSON.stringify(text)}`);
    }
  }
  lines.push('  ...');
  return lines.join('\n');
}

function describeError(err) {
  if (!(err instanceof Error)) return { message: String(err) };
  return {
    message: err.message,
    name: err.name,
    code: err.code,
    status: err.$metadata?.httpStatusCode ?? err.statusCode,
    requestId: err.$metadata?.requestId,
    request: err.request,
    stack: err.name === 'CheckError' || err.$metadata ? undefined : err.stack,
  };
}

class CheckError extends Error {
  constructor(message, extra = {}) {
    super(message);
    this.name = 'CheckError';
    Object.assign(this, extra);
  }
}

function assert(cond, message, extra) {
  if (!cond) throw new CheckError(message, extra);
}

/* Fails unless promise rejects with a Cognito error of the given type. */
async function expectError(promise, type, request) {
  let result;
  try {
    result = await promise;
  } catch (err) {
    const name = err?.name;
    const code = err?.code;
    assert(name === type, `expected error ${type}, got ${name} (${err?.message})`,
           { got: describeError(err), request });
    // amazon-cognito-identity-js also sets err.code; the SDK does not
    assert(code === undefined || code === type, `expected err.code ${type}, got ${code}`,
           { got: describeError(err), request });
    return err;
  }
  throw new CheckError(`expected ${type}, but the call succeeded`, { response: result, request });
}

function needs(value, what) {
  if (value === undefined || value === null)
    throw new CheckError(`prerequisite missing: ${what} (an earlier check failed)`);
  return value;
}

/* ---- JWT ----------------------------------------------------------------- */

function decodeJwt(token) {
  assert(typeof token === 'string', `token is not a string: ${typeof token}`);
  const parts = token.split('.');
  assert(parts.length === 3, `token is not a JWS compact serialization (${parts.length} parts)`);
  const [header, payload] = parts.slice(0, 2).map((p) => JSON.parse(Buffer.from(p, 'base64url').toString('utf8')));
  return { header, payload };
}

function checkIdToken(token, username, email) {
  const { header, payload } = decodeJwt(token);
  assert(header.alg === 'RS256', `id token alg ${header.alg}, expected RS256`, { header });
  assert(typeof header.kid === 'string', 'id token has no kid', { header });
  assert(payload.token_use === 'id', `token_use ${payload.token_use}, expected id`, { payload });
  assert(payload.aud === clientId, `aud ${payload.aud}, expected ${clientId}`, { payload });
  assert(payload['cognito:username'] === username,
         `cognito:username ${payload['cognito:username']}, expected ${username}`, { payload });
  assert(typeof payload.iss === 'string' && payload.iss.endsWith(`/${poolId}`),
         `iss ${payload.iss} does not end with /${poolId}`, { payload });
  if (email !== undefined)
    assert(payload.email === email, `email ${payload.email}, expected ${email}`, { payload });
  assert(typeof payload.sub === 'string' && payload.sub.length > 0, 'no sub', { payload });
  assert(payload.exp > Date.now() / 1000, 'id token already expired', { payload });
  return payload;
}

function checkAccessToken(token) {
  const { payload } = decodeJwt(token);
  assert(payload.token_use === 'access', `token_use ${payload.token_use}, expected access`, { payload });
  assert(payload.client_id === clientId, `client_id ${payload.client_id}, expected ${clientId}`, { payload });
  return payload;
}

/* ---- the outbox ---------------------------------------------------------- */

async function listOutbox() {
  try {
    return (await readdir(outboxDir)).filter((f) => f.endsWith('.eml')).sort();
  } catch (err) {
    if (err.code === 'ENOENT') return [];
    throw err;
  }
}

function decodeQuotedPrintable(text) {
  return text
    .replace(/=\r?\n/g, '')
    .replace(/=([0-9A-F]{2})/gi, (_, hex) => String.fromCharCode(parseInt(hex, 16)));
}

function parseMessage(text) {
  const split = text.search(/\r?\n\r?\n/);
  const head = split < 0 ? text : text.slice(0, split);
  let body = split < 0 ? '' : text.slice(split).replace(/^\r?\n\r?\n/, '');
  const headers = {};
  for (const line of head.replace(/\r?\n[ \t]/g, ' ').split(/\r?\n/)) {
    const m = /^([^:]+):\s*(.*)$/.exec(line);
    if (m) headers[m[1].toLowerCase()] = m[2];
  }
  if (/quoted-printable/i.test(headers['content-transfer-encoding'] ?? ''))
    body = decodeQuotedPrintable(body);
  return { headers, body };
}

/* Waits for a message to `to`, not among `seen`, whose body says
 * "<phrase> NNNNNN"; returns the code. */
async function codeFromOutbox(seen, to, phrase) {
  const re = new RegExp(`${phrase} (\\d+)`);
  const deadline = Date.now() + 10000;
  for (;;) {
    for (const file of await listOutbox()) {
      if (seen.has(file)) continue;
      const { headers, body } = parseMessage(await readFile(join(outboxDir, file), 'utf8'));
      const m = re.exec(body);
      if (m && (headers.to ?? '').includes(to)) {
        seen.add(file);
        return m[1];
      }
    }
    if (Date.now() > deadline)
      throw new CheckError(`no new message to ${to} saying "${phrase} NNNNNN" in ${outboxDir}`,
                           { files: await listOutbox() });
    await new Promise((r) => setTimeout(r, 100));
  }
}

/* ---- the AWS SDK v3 ------------------------------------------------------ */

const sdk = new CognitoIdentityProviderClient({
  region: 'local',
  endpoint: url,
  credentials: { accessKeyId: 'AKIAFIELDLINELOCAL00', secretAccessKey: 'fieldline-local-dummy-secret' },
});

const tag = randomBytes(4).toString('hex');
const seenMail = new Set(await listOutbox());

const A = {
  username: `sdk-${tag}`,
  email: `sdk-${tag}@example.com`,
  password: 'Sdk-first-Passw0rd!',
  changed: 'Sdk-second-Passw0rd!',
  reset: 'Sdk-third-Passw0rd!',
};
let confirmCode, tokens, refreshed, resetCode, finalTokens;

check('SDK SignUp with an email attribute returns UserSub, UserConfirmed false', async () => {
  const input = {
    ClientId: clientId,
    Username: A.username,
    Password: A.password,
    UserAttributes: [{ Name: 'email', Value: A.email }],
  };
  const out = await sdk.send(new SignUpCommand(input));
  assert(typeof out.UserSub === 'string' && out.UserSub.length > 0, 'no UserSub', { response: out });
  assert(out.UserConfirmed === false, `UserConfirmed ${out.UserConfirmed}, expected false`, { response: out });
  assert(out.CodeDeliveryDetails?.DeliveryMedium === 'EMAIL',
         `CodeDeliveryDetails.DeliveryMedium ${out.CodeDeliveryDetails?.DeliveryMedium}, expected EMAIL`,
         { response: out });
  A.sub = out.UserSub;
});

check('the confirmation code is in the outbox', async () => {
  needs(A.sub, 'the signed-up user');
  confirmCode = await codeFromOutbox(seenMail, A.email, 'Your confirmation code is');
});

check('SDK ConfirmSignUp with a wrong code fails with CodeMismatchException', async () => {
  const code = needs(confirmCode, 'the confirmation code');
  const wrong = String((Number(code) + 1) % 1000000).padStart(code.length, '0');
  const input = { ClientId: clientId, Username: A.username, ConfirmationCode: wrong };
  await expectError(sdk.send(new ConfirmSignUpCommand(input)), 'CodeMismatchException', input);
});

check('SDK ConfirmSignUp with the code from the outbox', async () => {
  const input = { ClientId: clientId, Username: A.username, ConfirmationCode: needs(confirmCode, 'the confirmation code') };
  await sdk.send(new ConfirmSignUpCommand(input));
  A.confirmed = true;
});

check('SDK InitiateAuth USER_PASSWORD_AUTH returns tokens', async () => {
  needs(A.confirmed, 'a confirmed user');
  const out = await sdk.send(new InitiateAuthCommand({
    AuthFlow: 'USER_PASSWORD_AUTH',
    ClientId: clientId,
    AuthParameters: { USERNAME: A.username, PASSWORD: A.password },
  }));
  const r = out.AuthenticationResult;
  assert(r, `no AuthenticationResult (ChallengeName ${out.ChallengeName})`, { response: out });
  assert(r.TokenType === 'Bearer', `TokenType ${r.TokenType}`, { response: out });
  assert(r.ExpiresIn > 0, `ExpiresIn ${r.ExpiresIn}`, { response: out });
  assert(typeof r.RefreshToken === 'string' && r.RefreshToken.length > 0, 'no RefreshToken', { response: out });
  checkIdToken(r.IdToken, A.username, A.email);
  checkAccessToken(r.AccessToken);
  tokens = r;
});

check('SDK InitiateAuth with a wrong password fails with NotAuthorizedException', async () => {
  needs(A.confirmed, 'a confirmed user');
  const input = {
    AuthFlow: 'USER_PASSWORD_AUTH',
    ClientId: clientId,
    AuthParameters: { USERNAME: A.username, PASSWORD: 'Not-the-Passw0rd!' },
  };
  await expectError(sdk.send(new InitiateAuthCommand(input)), 'NotAuthorizedException', input);
});

check('SDK GetUser returns the username and email', async () => {
  const out = await sdk.send(new GetUserCommand({ AccessToken: needs(tokens, 'tokens').AccessToken }));
  assert(out.Username === A.username, `Username ${out.Username}, expected ${A.username}`, { response: out });
  const attrs = Object.fromEntries((out.UserAttributes ?? []).map((a) => [a.Name, a.Value]));
  assert(attrs.email === A.email, `email attribute ${attrs.email}, expected ${A.email}`, { response: out });
  assert(attrs.sub === A.sub, `sub attribute ${attrs.sub}, expected ${A.sub}`, { response: out });
});

check('SDK InitiateAuth REFRESH_TOKEN_AUTH returns new tokens', async () => {
  const out = await sdk.send(new InitiateAuthCommand({
    AuthFlow: 'REFRESH_TOKEN_AUTH',
    ClientId: clientId,
    AuthParameters: { REFRESH_TOKEN: needs(tokens, 'tokens').RefreshToken },
  }));
  const r = out.AuthenticationResult;
  assert(r, 'no AuthenticationResult', { response: out });
  checkIdToken(r.IdToken, A.username, A.email);
  checkAccessToken(r.AccessToken);
  refreshed = r;
});

check('SDK GetUser accepts the refreshed access token', async () => {
  const out = await sdk.send(new GetUserCommand({ AccessToken: needs(refreshed, 'refreshed tokens').AccessToken }));
  assert(out.Username === A.username, `Username ${out.Username}`, { response: out });
});

check('SDK ChangePassword', async () => {
  await sdk.send(new ChangePasswordCommand({
    AccessToken: needs(tokens, 'tokens').AccessToken,
    PreviousPassword: A.password,
    ProposedPassword: A.changed,
  }));
  A.current = A.changed;
});

check('SDK InitiateAuth with the changed password succeeds, the old one fails', async () => {
  needs(A.current, 'a changed password');
  const out = await sdk.send(new InitiateAuthCommand({
    AuthFlow: 'USER_PASSWORD_AUTH',
    ClientId: clientId,
    AuthParameters: { USERNAME: A.username, PASSWORD: A.changed },
  }));
  assert(out.AuthenticationResult?.AccessToken, 'no AccessToken', { response: out });
  const input = {
    AuthFlow: 'USER_PASSWORD_AUTH',
    ClientId: clientId,
    AuthParameters: { USERNAME: A.username, PASSWORD: A.password },
  };
  await expectError(sdk.send(new InitiateAuthCommand(input)), 'NotAuthorizedException', input);
});

check('SDK ForgotPassword delivers a reset code to the outbox', async () => {
  needs(A.confirmed, 'a confirmed user');
  const out = await sdk.send(new ForgotPasswordCommand({ ClientId: clientId, Username: A.username }));
  assert(out.CodeDeliveryDetails?.DeliveryMedium === 'EMAIL',
         `CodeDeliveryDetails.DeliveryMedium ${out.CodeDeliveryDetails?.DeliveryMedium}`, { response: out });
  resetCode = await codeFromOutbox(seenMail, A.email, 'Your password reset code is');
});

check('SDK ConfirmForgotPassword with the code from the outbox', async () => {
  await sdk.send(new ConfirmForgotPasswordCommand({
    ClientId: clientId,
    Username: A.username,
    ConfirmationCode: needs(resetCode, 'the reset code'),
    Password: A.reset,
  }));
  A.current = A.reset;
});

check('SDK InitiateAuth with the reset password returns tokens', async () => {
  needs(A.current === A.reset ? A.current : undefined, 'the reset password');
  const out = await sdk.send(new InitiateAuthCommand({
    AuthFlow: 'USER_PASSWORD_AUTH',
    ClientId: clientId,
    AuthParameters: { USERNAME: A.username, PASSWORD: A.reset },
  }));
  assert(out.AuthenticationResult?.AccessToken, 'no AccessToken', { response: out });
  finalTokens = out.AuthenticationResult;
});

check('SDK GlobalSignOut', async () => {
  await sdk.send(new GlobalSignOutCommand({ AccessToken: needs(finalTokens, 'tokens').AccessToken }));
  A.signedOut = true;
});

check('SDK GetUser after GlobalSignOut fails with NotAuthorizedException', async () => {
  needs(A.signedOut, 'a GlobalSignOut');
  const input = { AccessToken: finalTokens.AccessToken };
  await expectError(sdk.send(new GetUserCommand(input)), 'NotAuthorizedException', input);
});

check('SDK REFRESH_TOKEN_AUTH after GlobalSignOut fails with NotAuthorizedException', async () => {
  needs(A.signedOut, 'a GlobalSignOut');
  const input = {
    AuthFlow: 'REFRESH_TOKEN_AUTH',
    ClientId: clientId,
    AuthParameters: { REFRESH_TOKEN: finalTokens.RefreshToken },
  };
  await expectError(sdk.send(new InitiateAuthCommand(input)), 'NotAuthorizedException', input);
});

/* ---- amazon-cognito-identity-js ------------------------------------------ */

const pool = new CognitoUserPool({ UserPoolId: poolId, ClientId: clientId, endpoint: url });

const B = {
  username: `js-${tag}`,
  email: `js-${tag}@example.com`,
  password: 'Js-first-Passw0rd!',
};

function newUser() {
  return new CognitoUser({ Username: B.username, Pool: pool });
}

/* authenticateUser as a promise; the callbacks other than onSuccess and
 * onFailure mean the relay asked for something the check did not expect. */
function authenticate(user, password) {
  const details = new AuthenticationDetails({ Username: B.username, Password: password });
  return new Promise((resolve, reject) => {
    const unexpected = (what) => (...args) =>
      reject(new CheckError(`unexpected callback ${what}`, { args }));
    user.authenticateUser(details, {
      onSuccess: resolve,
      onFailure: reject,
      newPasswordRequired: unexpected('newPasswordRequired'),
      mfaRequired: unexpected('mfaRequired'),
      totpRequired: unexpected('totpRequired'),
      customChallenge: unexpected('customChallenge'),
      mfaSetup: unexpected('mfaSetup'),
      selectMFAType: unexpected('selectMFAType'),
    });
  });
}

function checkSession(session) {
  assert(session && session.isValid(), 'the session is not valid');
  const idToken = session.getIdToken().getJwtToken();
  checkIdToken(idToken, B.username, B.email);
  assert(session.getIdToken().decodePayload()['cognito:username'] === B.username,
         'getIdToken().decodePayload() has the wrong cognito:username');
  checkAccessToken(session.getAccessToken().getJwtToken());
  assert(session.getRefreshToken().getToken(), 'no refresh token');
}

let jsSession;

check('identity-js CognitoUserPool.signUp', async () => {
  const out = await new Promise((resolve, reject) =>
    pool.signUp(B.username, B.password, [new CognitoUserAttribute({ Name: 'email', Value: B.email })], null,
                (err, result) => (err ? reject(err) : resolve(result))));
  assert(out.userConfirmed === false, `userConfirmed ${out.userConfirmed}`);
  assert(out.user?.getUsername() === B.username, 'signUp returned the wrong user');
  B.signedUp = true;
});

check('identity-js CognitoUser.confirmRegistration with the code from the outbox', async () => {
  needs(B.signedUp, 'the signed-up user');
  const code = await codeFromOutbox(seenMail, B.email, 'Your confirmation code is');
  const out = await new Promise((resolve, reject) =>
    newUser().confirmRegistration(code, true, (err, result) => (err ? reject(err) : resolve(result))));
  assert(out === 'SUCCESS', `confirmRegistration answered ${JSON.stringify(out)}`);
  B.confirmed = true;
});

check('identity-js authenticateUser (USER_SRP_AUTH) gives a valid session and id token', async () => {
  needs(B.confirmed, 'a confirmed user');
  const user = newUser();
  assert(user.getAuthenticationFlowType() === 'USER_SRP_AUTH',
         `default flow ${user.getAuthenticationFlowType()}, expected USER_SRP_AUTH`);
  const session = await authenticate(user, B.password);
  checkSession(session);
  jsSession = { user, session };
});

check('identity-js authenticateUser (USER_SRP_AUTH) with a wrong password fails with NotAuthorizedException', async () => {
  needs(B.confirmed, 'a confirmed user');
  await expectError(authenticate(newUser(), 'Not-the-Passw0rd!'), 'NotAuthorizedException',
                    { flow: 'USER_SRP_AUTH', username: B.username });
});

check('identity-js authenticateUser with USER_PASSWORD_AUTH gives a valid session', async () => {
  needs(B.confirmed, 'a confirmed user');
  const user = newUser();
  user.setAuthenticationFlowType('USER_PASSWORD_AUTH');
  checkSession(await authenticate(user, B.password));
});

check('identity-js authenticateUser (USER_PASSWORD_AUTH) with a wrong password fails with NotAuthorizedException', async () => {
  needs(B.confirmed, 'a confirmed user');
  const user = newUser();
  user.setAuthenticationFlowType('USER_PASSWORD_AUTH');
  await expectError(authenticate(user, 'Not-the-Passw0rd!'), 'NotAuthorizedException',
                    { flow: 'USER_PASSWORD_AUTH', username: B.username });
});

check('identity-js getUserAttributes (GetUser) on the SRP session', async () => {
  const { user } = needs(jsSession, 'an SRP session');
  const attrs = await new Promise((resolve, reject) =>
    user.getUserAttributes((err, result) => (err ? reject(err) : resolve(result))));
  const map = Object.fromEntries(attrs.map((a) => [a.getName(), a.getValue()]));
  assert(map.email === B.email, `email ${map.email}, expected ${B.email}`, { attributes: map });
});

check('identity-js refreshSession (REFRESH_TOKEN_AUTH)', async () => {
  const { user, session } = needs(jsSession, 'an SRP session');
  const next = await new Promise((resolve, reject) =>
    user.refreshSession(session.getRefreshToken(), (err, result) => (err ? reject(err) : resolve(result))));
  assert(next.isValid(), 'the refreshed session is not valid');
  checkIdToken(next.getIdToken().getJwtToken(), B.username, B.email);
});

/* ---- run ----------------------------------------------------------------- */

console.log(`1..${checks.length}`);
console.log(`# relay ${url}, user pool ${poolId}, app client ${clientId}`);
let failed = 0;
for (const [i, { name, fn }] of checks.entries()) {
  try {
    await fn();
    console.log(`ok ${i + 1} - ${name}`);
  } catch (err) {
    failed++;
    console.log(`not ok ${i + 1} - ${name}`);
    const extra = { ...describeError(err) };
    for (const key of ['got', 'request', 'response', 'payload', 'header', 'files', 'args', 'attributes'])
      if (err && err[key] !== undefined) extra[key] = err[key];
    console.log(yamlBlock(extra));
  }
}
if (failed) console.log(`# ${failed} of ${checks.length} checks failed`);
process.exit(failed ? 1 : 0);
