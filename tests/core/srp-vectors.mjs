// srp-vectors.mjs: known SRP vectors for test-srp.c, from Amazon's own
// client, amazon-cognito-identity-js.  Not used by the build.
//
// It drives the real CognitoUser.authenticateUser (USER_SRP_AUTH) against
// a fake Cognito: fixed private value a and clock, fixed SALT, SRP_B and
// SECRET_BLOCK, and prints k, the verifier, A, u, x, S, the HKDF key and
// PASSWORD_CLAIM_SIGNATURE as C constants.  B is made from a fixed b with
// the library's own hash and padHex, so the server side is checked too.
//
// Run it outside the source tree:
//   mkdir -p /tmp/srpvec && cd /tmp/srpvec && npm init -y
//   npm install amazon-cognito-identity-js     (6.3.21 was used)
//   node /path/to/tests/core/srp-vectors.mjs
// and paste its output into test-srp.c.

import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

// resolve the package from the current directory, not from this file
const require = createRequire(pathToFileURL(process.cwd() + '/'));
const lib = require('amazon-cognito-identity-js');
const BigInteger = require('amazon-cognito-identity-js/lib/BigInteger').default;
const { AuthenticationHelper, CognitoUser, CognitoUserPool, DateHelper } = lib;

// n deterministic bytes from a label
function det(label, n) {
  let out = Buffer.alloc(0);
  for (let i = 0; out.length < n; i++)
    out = Buffer.concat([out, createHash('sha256').update(`${label}/${i}`).digest()]);
  return out.subarray(0, n);
}

function modPow(base, exp, mod) {
  let r;
  base.modPow(exp, mod, (err, v) => { if (err) throw err; r = v; });
  return r;
}

// C string literal, 64 characters a line
function cstr(name, s) {
  const lines = s.match(/.{1,64}/g) || [''];
  return `#define ${name} \\\n` + lines.map(l => `  "${l}"`).join(' \\\n') + '\n';
}

function vector(tag, c) {
  const helper0 = new AuthenticationHelper('unused');
  const N = helper0.N;
  const g = helper0.g;
  const k = helper0.k;
  const poolName = c.poolId.split('_')[1];

  // the server's side, with the library's own helpers: x, v = g^x,
  // B = (k*v + g^b) mod N
  const saltInt = new BigInteger(c.saltHex, 16);
  const x = new BigInteger(
    helper0.hexHash(helper0.padHex(saltInt) + helper0.hash(`${poolName}${c.userIdForSrp}:${c.password}`)), 16);
  const v = modPow(g, x, N);
  const b = new BigInteger(c.bHex, 16);
  const B = k.multiply(v).add(modPow(g, b, N)).mod(N);

  // fixed a and clock for the real client flow
  const captured = {};
  const origSmallA = AuthenticationHelper.prototype.generateRandomSmallA;
  const origNow = DateHelper.prototype.getNowString;
  const origS = AuthenticationHelper.prototype.calculateS;
  const origHkdf = AuthenticationHelper.prototype.computehkdf;
  AuthenticationHelper.prototype.generateRandomSmallA = () => new BigInteger(c.aHex, 16);
  DateHelper.prototype.getNowString = () => c.timestamp;
  AuthenticationHelper.prototype.calculateS = function (xValue, bValue, cb) {
    captured.x = xValue;
    captured.u = this.UValue;
    return origS.call(this, xValue, bValue, (err, s) => { captured.S = s; cb(err, s); });
  };
  AuthenticationHelper.prototype.computehkdf = function (ikm, salt) {
    captured.key = origHkdf.call(this, ikm, salt);
    return captured.key;
  };

  const store = {};
  const storage = {
    setItem: (key, val) => { store[key] = val; },
    getItem: key => store[key] ?? null,
    removeItem: key => { delete store[key]; },
    clear: () => {},
  };
  const pool = new CognitoUserPool({ UserPoolId: c.poolId, ClientId: 'vectors', Storage: storage });
  const user = new CognitoUser({ Username: c.username, Pool: pool, Storage: storage });
  user.client = {
    request(op, params, cb) {
      if (op === 'InitiateAuth') {
        captured.A = params.AuthParameters.SRP_A;
        cb(null, {
          ChallengeName: 'PASSWORD_VERIFIER',
          ChallengeParameters: {
            SALT: c.saltHex, SRP_B: B.toString(16), SECRET_BLOCK: c.secretBlockB64,
            USER_ID_FOR_SRP: c.userIdForSrp, USERNAME: c.userIdForSrp,
          },
        });
      } else if (op === 'RespondToAuthChallenge') {
        captured.responses = params.ChallengeResponses;
        cb(new Error('stop'), null);
      } else {
        throw new Error(op);
      }
    },
  };
  user.authenticateUser(
    new lib.AuthenticationDetails({ Username: c.username, Password: c.password }),
    { onSuccess: () => {}, onFailure: () => {} });

  AuthenticationHelper.prototype.generateRandomSmallA = origSmallA;
  DateHelper.prototype.getNowString = origNow;
  AuthenticationHelper.prototype.calculateS = origS;
  AuthenticationHelper.prototype.computehkdf = origHkdf;

  if (!captured.x.equals(x))
    throw new Error('x of the client and of the generator differ');
  if (captured.responses.TIMESTAMP !== c.timestamp)
    throw new Error('timestamp');

  let out = `/* ${tag}: ${JSON.stringify({ poolId: c.poolId, userIdForSrp: c.userIdForSrp, password: c.password })} */\n`;
  out += cstr(`${tag}_POOL`, poolName);
  out += cstr(`${tag}_USER`, c.userIdForSrp);
  out += cstr(`${tag}_PASSWORD`, c.password.replace(/[^\x20-\x7e]/g, ch =>
    [...Buffer.from(ch, 'utf8')].map(x => '\\x' + x.toString(16)).join('') + '" "'));
  out += cstr(`${tag}_SALT`, c.saltHex);
  out += cstr(`${tag}_PRIVATE_A`, c.aHex);
  out += cstr(`${tag}_PRIVATE_B`, c.bHex);
  out += cstr(`${tag}_SECRET_BLOCK`, c.secretBlockB64);
  out += cstr(`${tag}_TIMESTAMP`, c.timestamp);
  out += cstr(`${tag}_X`, captured.x.toString(16));
  out += cstr(`${tag}_VERIFIER`, v.toString(16).padStart(768, '0')); // 384 bytes, big-endian
  out += cstr(`${tag}_A`, captured.A);
  out += cstr(`${tag}_B`, B.toString(16));
  out += cstr(`${tag}_U`, captured.u.toString(16));
  out += cstr(`${tag}_S`, captured.S.toString(16));
  out += cstr(`${tag}_KEY`, Buffer.from(captured.key).toString('hex'));
  out += cstr(`${tag}_SIGNATURE`, captured.responses.PASSWORD_CLAIM_SIGNATURE);
  return out;
}

const k = new AuthenticationHelper('unused').k;
process.stdout.write(cstr('VECTOR_K', k.toString(16)) + '\n');

// salt with its top bit set (PAD adds "00"), an ASCII password
process.stdout.write(vector('V1', {
  poolId: 'local_AbC123',
  username: 'alice',
  userIdForSrp: '5f0c6a2e-3d7b-4a52-9a39-1f0e1c2b3a4d',
  password: 'Corr3ct-h0rse!',
  saltHex: 'e' + det('salt1', 16).toString('hex').slice(1),
  aHex: det('a1', 128).toString('hex'),
  bHex: det('b1', 128).toString('hex'),
  secretBlockB64: det('secret1', 200).toString('base64'),
  timestamp: 'Fri Nov 6 08:03:09 UTC 2026',
}) + '\n');

// salt with leading zero bytes (dropped as an integer), a UTF-8 password,
// u with its top bit set (PAD(u) in the HKDF gets "00")
process.stdout.write(vector('V2', {
  poolId: 'eu-west-1_Zz9',
  username: 'bob@example.com',
  userIdForSrp: 'bob@example.com',
  password: 'pässwörd ✓ 2',
  saltHex: '00003a' + det('salt2', 13).toString('hex'),
  aHex: det('a3', 128).toString('hex'),
  bHex: det('b2', 32).toString('hex'),
  secretBlockB64: det('secret2', 97).toString('base64'),
  timestamp: 'Thu Feb 29 23:59:59 UTC 2024',
}));
