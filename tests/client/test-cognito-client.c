/* test-cognito-client.c: FlCognitoClient against an in-process relay
 * (SRP and password sign-in, NEW_PASSWORD_REQUIRED, refresh, sign-up and
 * its codes in the outbox, password reset, global sign-out, app clients
 * with a secret or without SRP), and against servers that fail: a closed
 * port, an untrusted certificate, answers that are not Cognito's, a
 * connection that drops, a server that never answers. */
#define G_LOG_DOMAIN "test-cognito-client"

#include "config.h"

#include <string.h>

#include <glib/gstdio.h>
#include <libsoup/soup.h>

#include "fieldline-client.h"
#include "fl-test-util.h"
#include "fl-user-pool-private.h"

#define PASSWORD "Tr1cky-Passw0rd!"
#define NEW_PASSWORD "N3w-Battery-Staple!"
#define WRONG_PASSWORD "Wr0ng-Passw0rd!"
#define TEMPORARY_PASSWORD "Temp0rary-Pass!"

#define TOKEN_LIFETIME 3600

#define CONFIRMATION_PHRASE "Your confirmation code is"
#define RESET_PHRASE "Your password reset code is"

/* ---- the lab relay (one for all tests; each test has its own users) ---- */

static struct
{
  TestRelay  *relay;
  FlUserPool *pool;
  char       *endpoint; /* the relay's base URL with a "/" */
  const char *pool_id;
  const char *client_id; /* the relay's own app client: all flows, no secret */
  char       *outbox;
  GHashTable *seen_mail; /* outbox files read already */
} lab;

static void
lab_start (void)
{
  g_autoptr (GError) error = NULL;

  lab.relay = g_new0 (TestRelay, 1);
  lab.relay->data_dir = g_dir_make_tmp ("fieldline-cognito-client-XXXXXX", &error);
  g_assert_no_error (error);
  test_relay_start (lab.relay);

  lab.pool = fl_relay_get_user_pool (lab.relay->relay);
  /* tiny argon2 costs: these tests are about the protocol, not hashing */
  _fl_user_pool_set_argon2_params (lab.pool, 1, 64, 1);
  lab.endpoint = g_strconcat (lab.relay->url, "/", NULL);
  lab.pool_id = fl_relay_get_pool_id (lab.relay->relay);
  lab.client_id = fl_relay_get_client_id (lab.relay->relay);
  lab.outbox = g_build_filename (lab.relay->data_dir, "outbox", NULL);
  lab.seen_mail = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
}

static void
lab_stop (void)
{
  g_clear_pointer (&lab.relay, test_relay_free);
  lab.pool = NULL;
  g_clear_pointer (&lab.endpoint, g_free);
  g_clear_pointer (&lab.outbox, g_free);
  g_clear_pointer (&lab.seen_mail, g_hash_table_unref);
}

static FlCognitoClient *
lab_client (const char *client_id,
            const char *secret)
{
  return fl_cognito_client_new (lab.endpoint, lab.pool_id, client_id, secret);
}

static void
add_user (const char *username,
          const char *password)
{
  g_autoptr (GError) error = NULL;
  g_autofree char   *email = g_strdup_printf ("%s@example.org", username);

  fl_user_pool_add_user (lab.pool, username, email, password, FL_ROLE_VIEWER, &error);
  g_assert_no_error (error);
}

/* An app client of the lab pool; *secret is set for one with a secret */
static char *
add_app_client (const char *name,
                FlAuthFlows flows,
                char      **secret)
{
  g_autoptr (GError) error = NULL;
  char              *client_id = NULL;

  g_assert_true (fl_user_pool_add_client (lab.pool, name, secret != NULL, flows, &client_id, secret, &error));
  g_assert_no_error (error);
  g_assert_nonnull (client_id);
  if (secret != NULL)
    g_assert_nonnull (*secret);

  return client_id;
}

/* The codes in the outbox messages not read before: exactly one, to
 * email, saying "<phrase> NNNNNN" */
static char *
take_code (const char *email,
           const char *phrase)
{
  g_autoptr (GDir)       dir = g_dir_open (lab.outbox, 0, NULL);
  g_autoptr (GPtrArray)  texts = g_ptr_array_new_with_free_func (g_free);
  g_autofree char       *to = g_strdup_printf ("\r\nTo: %s\r\n", email);
  g_autofree char       *pattern = g_strdup_printf ("%s ([0-9]{6})\r\n", phrase);
  g_autoptr (GRegex)     regex = g_regex_new (pattern, 0, 0, NULL);
  g_autoptr (GMatchInfo) match = NULL;
  const char            *name;
  const char            *text;

  g_assert_nonnull (dir);
  while ((name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char   *path = NULL;
      g_autoptr (GError) error = NULL;
      char              *contents = NULL;

      if (!g_str_has_suffix (name, ".eml") || g_hash_table_contains (lab.seen_mail, name))
        continue;
      path = g_build_filename (lab.outbox, name, NULL);
      g_file_get_contents (path, &contents, NULL, &error);
      g_assert_no_error (error);
      g_ptr_array_add (texts, contents);
      g_hash_table_add (lab.seen_mail, g_strdup (name));
    }

  g_assert_cmpuint (texts->len, ==, 1);
  text = g_ptr_array_index (texts, 0);
  if (strstr (text, to) == NULL)
    g_error ("The message is not to %s:\n%s", email, text);
  if (!g_regex_match (regex, text, 0, &match))
    g_error ("No “%s NNNNNN” in the message:\n%s", phrase, text);

  return g_match_info_fetch (match, 1);
}

/* ---- calls, waited for on the main context ------------------------------ */

static FlCognitoTokens *
sign_in (FlCognitoClient     *client,
         const char          *username,
         const char          *password,
         FlCognitoChallenge **challenge,
         GError             **error)
{
  g_autoptr (GAsyncResult)       result = NULL;
  g_autoptr (FlCognitoChallenge) unexpected = NULL;
  FlCognitoTokens               *tokens;

  fl_cognito_client_sign_in_async (client, username, password, NULL, test_result_cb, &result);
  tokens = fl_cognito_client_sign_in_finish (client, test_wait_result (&result),
                                             challenge != NULL ? challenge : &unexpected, error);
  g_assert_null (unexpected);
  return tokens;
}

static FlCognitoTokens *
refresh (FlCognitoClient *client,
         const char      *username,
         const char      *refresh_token,
         GError         **error)
{
  g_autoptr (GAsyncResult) result = NULL;

  fl_cognito_client_refresh_async (client, username, refresh_token, NULL, test_result_cb, &result);
  return fl_cognito_client_refresh_finish (client, test_wait_result (&result), error);
}

static gboolean
sign_up (FlCognitoClient *client,
         const char      *username,
         const char      *password,
         const char      *email,
         gboolean        *confirmed,
         char           **destination,
         GError         **error)
{
  g_autoptr (GAsyncResult) result = NULL;

  fl_cognito_client_sign_up_async (client, username, password, email, NULL, test_result_cb, &result);
  return fl_cognito_client_sign_up_finish (client, test_wait_result (&result), confirmed, destination, error);
}

static gboolean
confirm_sign_up (FlCognitoClient *client,
                 const char      *username,
                 const char      *code,
                 GError         **error)
{
  g_autoptr (GAsyncResult) result = NULL;

  fl_cognito_client_confirm_sign_up_async (client, username, code, NULL, test_result_cb, &result);
  return fl_cognito_client_confirm_sign_up_finish (client, test_wait_result (&result), error);
}

static gint64
now_s (void)
{
  return g_get_real_time () / G_USEC_PER_SEC;
}

/* Tokens the relay minted for username, for the client: the access
 * token authenticates as that user, and the rest is filled in. */
static void
assert_tokens (const FlCognitoTokens *tokens,
               const char            *username)
{
  g_autoptr (FlPrincipal) principal = NULL;
  g_autoptr (GError)      error = NULL;

  g_assert_nonnull (tokens);
  g_assert_nonnull (tokens->id_token);
  g_assert_cmpuint (strlen (tokens->id_token), >, 0);
  g_assert_nonnull (tokens->access_token);
  g_assert_cmpuint (strlen (tokens->access_token), >, 0);
  g_assert_nonnull (tokens->refresh_token);
  g_assert_cmpuint (strlen (tokens->refresh_token), >, 0);
  g_assert_cmpstr (tokens->id_token, !=, tokens->access_token);
  g_assert_cmpint (tokens->expires_at, >=, now_s () + TOKEN_LIFETIME - 60);
  g_assert_cmpint (tokens->expires_at, <=, now_s () + TOKEN_LIFETIME + 1);
  g_assert_cmpstr (tokens->username, ==, username);

  principal = fl_user_pool_authenticate (lab.pool, tokens->access_token, &error);
  g_assert_no_error (error);
  g_assert_nonnull (principal);
  g_assert_true (principal->access);
  g_assert_cmpstr (principal->username, ==, username);

  g_clear_pointer (&principal, fl_principal_free);
  principal = fl_user_pool_authenticate (lab.pool, tokens->id_token, &error);
  g_assert_no_error (error);
  g_assert_nonnull (principal);
  g_assert_false (principal->access);
  g_assert_cmpstr (principal->username, ==, username);
}

static void
assert_cognito_error (const GError  *error,
                      FlCognitoError code,
                      const char    *type_name)
{
  g_assert_error (error, FL_COGNITO_ERROR, (gint) code);
  g_assert_cmpstr (fl_cognito_error_get_type_name (error), ==, type_name);
  g_assert_cmpuint (strlen (error->message), >, 0);
}

/* ---- sign-in against the relay ------------------------------------------ */

static void
test_sign_in_srp (void)
{
  g_autoptr (FlCognitoClient) client = lab_client (lab.client_id, NULL);
  g_autoptr (FlCognitoTokens) tokens = NULL;
  g_autoptr (FlCognitoTokens) copy = NULL;
  g_autoptr (GError)          error = NULL;

  g_assert_cmpstr (fl_cognito_client_get_endpoint (client), ==, lab.endpoint);
  g_assert_cmpstr (fl_cognito_client_get_user_pool_id (client), ==, lab.pool_id);
  g_assert_cmpstr (fl_cognito_client_get_client_id (client), ==, lab.client_id);

  add_user ("srp-user", PASSWORD);
  tokens = sign_in (client, "srp-user", PASSWORD, NULL, &error);
  g_assert_no_error (error);
  assert_tokens (tokens, "srp-user");

  copy = fl_cognito_tokens_copy (tokens);
  g_assert_true (copy != tokens);
  g_assert_cmpstr (copy->id_token, ==, tokens->id_token);
  g_assert_cmpstr (copy->access_token, ==, tokens->access_token);
  g_assert_cmpstr (copy->refresh_token, ==, tokens->refresh_token);
  g_assert_cmpint (copy->expires_at, ==, tokens->expires_at);
  g_assert_cmpstr (copy->username, ==, tokens->username);
  g_assert_null (fl_cognito_tokens_copy (NULL));
}

static void
test_sign_in_wrong_password (void)
{
  g_autoptr (FlCognitoClient) client = lab_client (lab.client_id, NULL);
  g_autoptr (FlCognitoTokens) tokens = NULL;
  g_autoptr (GError)          error = NULL;

  add_user ("wrong-password-user", PASSWORD);
  tokens = sign_in (client, "wrong-password-user", WRONG_PASSWORD, NULL, &error);
  g_assert_null (tokens);
  assert_cognito_error (error, FL_COGNITO_ERROR_NOT_AUTHORIZED, "NotAuthorizedException");
  g_assert_cmpstr (error->message, ==, "Incorrect username or password.");
  g_clear_error (&error);

  /* an unknown user fails alike */
  tokens = sign_in (client, "nobody-at-all", PASSWORD, NULL, &error);
  g_assert_null (tokens);
  assert_cognito_error (error, FL_COGNITO_ERROR_NOT_AUTHORIZED, "NotAuthorizedException");
  g_clear_error (&error);

  /* and the right password still works */
  tokens = sign_in (client, "wrong-password-user", PASSWORD, NULL, &error);
  g_assert_no_error (error);
  assert_tokens (tokens, "wrong-password-user");
}

static void
test_sign_in_unconfirmed (void)
{
  g_autoptr (FlCognitoClient) client = lab_client (lab.client_id, NULL);
  g_autoptr (FlCognitoTokens) tokens = NULL;
  g_autoptr (GError)          error = NULL;
  g_autofree char            *code = NULL;
  gboolean                    confirmed = TRUE;

  g_assert_true (sign_up (client, "unconfirmed-user", PASSWORD, "unconfirmed@example.org", &confirmed, NULL, &error));
  g_assert_no_error (error);
  g_assert_false (confirmed);
  code = take_code ("unconfirmed@example.org", CONFIRMATION_PHRASE);

  tokens = sign_in (client, "unconfirmed-user", PASSWORD, NULL, &error);
  g_assert_null (tokens);
  assert_cognito_error (error, FL_COGNITO_ERROR_USER_NOT_CONFIRMED, "UserNotConfirmedException");
}

/* An app client that does not allow USER_SRP_AUTH: the client falls back
 * to USER_PASSWORD_AUTH; one that allows neither fails with the error of
 * USER_PASSWORD_AUTH. */
static void
test_sign_in_password_fallback (void)
{
  g_autofree char            *password_only = add_app_client ("password-only",
                                                              FL_AUTH_FLOW_USER_PASSWORD | FL_AUTH_FLOW_REFRESH_TOKEN,
                                                              NULL);
  g_autofree char            *refresh_only = add_app_client ("refresh-only", FL_AUTH_FLOW_REFRESH_TOKEN, NULL);
  g_autoptr (FlCognitoClient) client = lab_client (password_only, NULL);
  g_autoptr (FlCognitoClient) neither = lab_client (refresh_only, NULL);
  g_autoptr (FlCognitoTokens) tokens = NULL;
  g_autoptr (FlCognitoTokens) refreshed = NULL;
  g_autoptr (GError)          error = NULL;

  add_user ("fallback-user", PASSWORD);
  tokens = sign_in (client, "fallback-user", PASSWORD, NULL, &error);
  g_assert_no_error (error);
  assert_tokens (tokens, "fallback-user");

  refreshed = refresh (client, "fallback-user", tokens->refresh_token, &error);
  g_assert_no_error (error);
  assert_tokens (refreshed, "fallback-user");
  g_clear_pointer (&tokens, fl_cognito_tokens_free);

  tokens = sign_in (client, "fallback-user", WRONG_PASSWORD, NULL, &error);
  g_assert_null (tokens);
  assert_cognito_error (error, FL_COGNITO_ERROR_NOT_AUTHORIZED, "NotAuthorizedException");
  g_clear_error (&error);

  tokens = sign_in (neither, "fallback-user", PASSWORD, NULL, &error);
  g_assert_null (tokens);
  assert_cognito_error (error, FL_COGNITO_ERROR_INVALID_PARAMETER, "InvalidParameterException");
  g_assert_nonnull (strstr (error->message, "USER_PASSWORD_AUTH"));
}

/* An app client with a secret: SECRET_HASH goes with sign-in (both SRP
 * steps), refresh, sign-up and its confirmation; without it or with the
 * wrong secret the pool refuses. */
static void
test_client_secret (void)
{
  g_autofree char            *secret = NULL;
  g_autofree char            *client_id = add_app_client ("with-secret", FL_AUTH_FLOWS_ALL, &secret);
  g_autoptr (FlCognitoClient) client = lab_client (client_id, secret);
  g_autoptr (FlCognitoClient) no_secret = lab_client (client_id, NULL);
  g_autoptr (FlCognitoClient) wrong_secret = lab_client (client_id, "not-the-secret");
  g_autoptr (FlCognitoTokens) tokens = NULL;
  g_autoptr (FlCognitoTokens) refreshed = NULL;
  g_autoptr (GError)          error = NULL;
  g_autoptr (GAsyncResult)    result = NULL;
  g_autofree char            *code = NULL;
  gboolean                    confirmed = TRUE;

  add_user ("secret-user", PASSWORD);
  tokens = sign_in (client, "secret-user", PASSWORD, NULL, &error);
  g_assert_no_error (error);
  assert_tokens (tokens, "secret-user");

  refreshed = refresh (client, "secret-user", tokens->refresh_token, &error);
  g_assert_no_error (error);
  assert_tokens (refreshed, "secret-user");
  g_assert_cmpstr (refreshed->refresh_token, ==, tokens->refresh_token);
  g_clear_pointer (&refreshed, fl_cognito_tokens_free);

  /* refreshing with a secret needs the username */
  refreshed = refresh (client, NULL, tokens->refresh_token, &error);
  g_assert_null (refreshed);
  assert_cognito_error (error, FL_COGNITO_ERROR_INVALID_PARAMETER, NULL);
  g_clear_error (&error);
  /* and the right one: the hash is made with it */
  refreshed = refresh (client, "somebody-else", tokens->refresh_token, &error);
  g_assert_null (refreshed);
  assert_cognito_error (error, FL_COGNITO_ERROR_NOT_AUTHORIZED, "NotAuthorizedException");
  g_clear_error (&error);
  g_clear_pointer (&tokens, fl_cognito_tokens_free);

  tokens = sign_in (no_secret, "secret-user", PASSWORD, NULL, &error);
  g_assert_null (tokens);
  assert_cognito_error (error, FL_COGNITO_ERROR_NOT_AUTHORIZED, "NotAuthorizedException");
  g_assert_nonnull (strstr (error->message, "SECRET_HASH"));
  g_clear_error (&error);

  tokens = sign_in (wrong_secret, "secret-user", PASSWORD, NULL, &error);
  g_assert_null (tokens);
  assert_cognito_error (error, FL_COGNITO_ERROR_NOT_AUTHORIZED, "NotAuthorizedException");
  g_clear_error (&error);

  /* SecretHash at the top level of SignUp and ConfirmSignUp */
  g_assert_false (sign_up (wrong_secret, "secret-signup", PASSWORD, "secret-signup@example.org", NULL, NULL, &error));
  assert_cognito_error (error, FL_COGNITO_ERROR_NOT_AUTHORIZED, "NotAuthorizedException");
  g_clear_error (&error);
  g_assert_true (sign_up (client, "secret-signup", PASSWORD, "secret-signup@example.org", &confirmed, NULL, &error));
  g_assert_no_error (error);
  g_assert_false (confirmed);
  code = take_code ("secret-signup@example.org", CONFIRMATION_PHRASE);
  g_assert_false (confirm_sign_up (no_secret, "secret-signup", code, &error));
  assert_cognito_error (error, FL_COGNITO_ERROR_NOT_AUTHORIZED, "NotAuthorizedException");
  g_clear_error (&error);
  g_assert_true (confirm_sign_up (client, "secret-signup", code, &error));
  g_assert_no_error (error);

  /* and ForgotPassword */
  fl_cognito_client_forgot_password_async (no_secret, "secret-signup", NULL, test_result_cb, &result);
  g_assert_null (fl_cognito_client_forgot_password_finish (no_secret, test_wait_result (&result), &error));
  assert_cognito_error (error, FL_COGNITO_ERROR_NOT_AUTHORIZED, "NotAuthorizedException");
  g_clear_error (&error);

  tokens = sign_in (client, "secret-signup", PASSWORD, NULL, &error);
  g_assert_no_error (error);
  assert_tokens (tokens, "secret-signup");
}

static void
test_unknown_client (void)
{
  g_autoptr (FlCognitoClient) client = lab_client ("no-such-client", NULL);
  g_autoptr (FlCognitoTokens) tokens = NULL;
  g_autoptr (GError)          error = NULL;

  add_user ("unknown-client-user", PASSWORD);
  tokens = sign_in (client, "unknown-client-user", PASSWORD, NULL, &error);
  g_assert_null (tokens);
  assert_cognito_error (error, FL_COGNITO_ERROR_RESOURCE_NOT_FOUND, "ResourceNotFoundException");
}

/* A user made with a temporary password must choose a new one. */
static void
test_new_password_required (void)
{
  g_autofree char               *secret = NULL;
  g_autofree char               *client_id = add_app_client ("new-password", FL_AUTH_FLOWS_ALL, &secret);
  g_autoptr (FlCognitoClient)    client = lab_client (client_id, secret);
  g_autoptr (FlCognitoChallenge) challenge = NULL;
  g_autoptr (FlCognitoTokens)    tokens = NULL;
  g_autoptr (GAsyncResult)       result = NULL;
  g_autoptr (GError)             error = NULL;

  fl_user_pool_create_user (lab.pool, "temporary-user", "temporary@example.org", TEMPORARY_PASSWORD, TRUE,
                            FL_ROLE_OPERATOR, &error);
  g_assert_no_error (error);

  tokens = sign_in (client, "temporary-user", TEMPORARY_PASSWORD, &challenge, &error);
  g_assert_no_error (error);
  g_assert_null (tokens);
  g_assert_nonnull (challenge);
  g_assert_cmpstr (challenge->name, ==, "NEW_PASSWORD_REQUIRED");
  g_assert_nonnull (challenge->session);
  g_assert_cmpuint (strlen (challenge->session), >, 0);
  g_assert_cmpstr (challenge->username, ==, "temporary-user");

  /* a password the policy refuses: the challenge stands */
  fl_cognito_client_respond_new_password_async (client, challenge, "short", NULL, test_result_cb, &result);
  tokens = fl_cognito_client_respond_new_password_finish (client, test_wait_result (&result), &error);
  g_assert_null (tokens);
  assert_cognito_error (error, FL_COGNITO_ERROR_INVALID_PASSWORD, "InvalidPasswordException");
  g_clear_error (&error);
  g_clear_object (&result);

  fl_cognito_client_respond_new_password_async (client, challenge, NEW_PASSWORD, NULL, test_result_cb, &result);
  tokens = fl_cognito_client_respond_new_password_finish (client, test_wait_result (&result), &error);
  g_assert_no_error (error);
  assert_tokens (tokens, "temporary-user");
  g_clear_pointer (&tokens, fl_cognito_tokens_free);
  g_clear_pointer (&challenge, fl_cognito_challenge_free);

  /* from now on: the new password, at once */
  tokens = sign_in (client, "temporary-user", NEW_PASSWORD, &challenge, &error);
  g_assert_no_error (error);
  g_assert_null (challenge);
  assert_tokens (tokens, "temporary-user");
  g_clear_pointer (&tokens, fl_cognito_tokens_free);

  tokens = sign_in (client, "temporary-user", TEMPORARY_PASSWORD, &challenge, &error);
  g_assert_null (tokens);
  g_assert_null (challenge);
  assert_cognito_error (error, FL_COGNITO_ERROR_NOT_AUTHORIZED, "NotAuthorizedException");
}

static void
test_refresh (void)
{
  g_autoptr (FlCognitoClient) client = lab_client (lab.client_id, NULL);
  g_autoptr (FlCognitoTokens) tokens = NULL;
  g_autoptr (FlCognitoTokens) refreshed = NULL;
  g_autoptr (GError)          error = NULL;

  add_user ("refresh-user", PASSWORD);
  tokens = sign_in (client, "refresh-user", PASSWORD, NULL, &error);
  g_assert_no_error (error);

  refreshed = refresh (client, "refresh-user", tokens->refresh_token, &error);
  g_assert_no_error (error);
  assert_tokens (refreshed, "refresh-user");
  g_assert_cmpstr (refreshed->refresh_token, ==, tokens->refresh_token);
  g_assert_cmpstr (refreshed->id_token, !=, tokens->id_token);
  g_assert_cmpstr (refreshed->access_token, !=, tokens->access_token);
  g_clear_pointer (&refreshed, fl_cognito_tokens_free);

  /* without a secret the username is only passed on */
  refreshed = refresh (client, NULL, tokens->refresh_token, &error);
  g_assert_no_error (error);
  g_assert_nonnull (refreshed);
  g_assert_null (refreshed->username);
  g_assert_cmpstr (refreshed->refresh_token, ==, tokens->refresh_token);
  g_clear_pointer (&refreshed, fl_cognito_tokens_free);

  refreshed = refresh (client, "refresh-user", "not-a-refresh-token", &error);
  g_assert_null (refreshed);
  assert_cognito_error (error, FL_COGNITO_ERROR_NOT_AUTHORIZED, "NotAuthorizedException");
}

static void
test_sign_up_and_confirm (void)
{
  g_autoptr (FlCognitoClient) client = lab_client (lab.client_id, NULL);
  g_autoptr (FlCognitoTokens) tokens = NULL;
  g_autoptr (GAsyncResult)    result = NULL;
  g_autoptr (GError)          error = NULL;
  g_autofree char            *destination = NULL;
  g_autofree char            *first_code = NULL;
  g_autofree char            *code = NULL;
  gboolean                    confirmed = TRUE;

  g_assert_true (sign_up (client, "new-user", PASSWORD, "alice@example.com", &confirmed, &destination, &error));
  g_assert_no_error (error);
  g_assert_false (confirmed);
  g_assert_cmpstr (destination, ==, "a***@e***");
  first_code = take_code ("alice@example.com", CONFIRMATION_PHRASE);
  g_clear_pointer (&destination, g_free);

  /* the name is taken now */
  g_assert_false (sign_up (client, "new-user", PASSWORD, "alice@example.com", &confirmed, &destination, &error));
  assert_cognito_error (error, FL_COGNITO_ERROR_USERNAME_EXISTS, "UsernameExistsException");
  g_assert_null (destination);
  g_clear_error (&error);

  /* a password the policy refuses */
  g_assert_false (sign_up (client, "weak-user", "short", "weak@example.com", NULL, NULL, &error));
  assert_cognito_error (error, FL_COGNITO_ERROR_INVALID_PASSWORD, "InvalidPasswordException");
  g_clear_error (&error);

  /* a new code */
  fl_cognito_client_resend_code_async (client, "new-user", NULL, test_result_cb, &result);
  destination = fl_cognito_client_resend_code_finish (client, test_wait_result (&result), &error);
  g_assert_no_error (error);
  g_assert_cmpstr (destination, ==, "a***@e***");
  code = take_code ("alice@example.com", CONFIRMATION_PHRASE);

  tokens = sign_in (client, "new-user", PASSWORD, NULL, &error);
  g_assert_null (tokens);
  assert_cognito_error (error, FL_COGNITO_ERROR_USER_NOT_CONFIRMED, "UserNotConfirmedException");
  g_clear_error (&error);

  g_assert_false (confirm_sign_up (client, "new-user", g_str_equal (code, "000000") ? "111111" : "000000", &error));
  assert_cognito_error (error, FL_COGNITO_ERROR_CODE_MISMATCH, "CodeMismatchException");
  g_clear_error (&error);

  g_assert_true (confirm_sign_up (client, "new-user", code, &error));
  g_assert_no_error (error);

  tokens = sign_in (client, "new-user", PASSWORD, NULL, &error);
  g_assert_no_error (error);
  assert_tokens (tokens, "new-user");
}

static void
test_forgot_password (void)
{
  g_autoptr (FlCognitoClient) client = lab_client (lab.client_id, NULL);
  g_autoptr (FlCognitoTokens) tokens = NULL;
  g_autoptr (GAsyncResult)    result = NULL;
  g_autoptr (GError)          error = NULL;
  g_autofree char            *destination = NULL;
  g_autofree char            *code = NULL;

  add_user ("forgetful-user", PASSWORD);

  fl_cognito_client_forgot_password_async (client, "forgetful-user", NULL, test_result_cb, &result);
  destination = fl_cognito_client_forgot_password_finish (client, test_wait_result (&result), &error);
  g_assert_no_error (error);
  g_assert_cmpstr (destination, ==, "f***@e***");
  code = take_code ("forgetful-user@example.org", RESET_PHRASE);
  g_clear_object (&result);

  fl_cognito_client_confirm_forgot_password_async (client, "forgetful-user",
                                                   g_str_equal (code, "000000") ? "111111" : "000000",
                                                   NEW_PASSWORD, NULL, test_result_cb, &result);
  g_assert_false (fl_cognito_client_confirm_forgot_password_finish (client, test_wait_result (&result), &error));
  assert_cognito_error (error, FL_COGNITO_ERROR_CODE_MISMATCH, "CodeMismatchException");
  g_clear_error (&error);
  g_clear_object (&result);

  fl_cognito_client_confirm_forgot_password_async (client, "forgetful-user", code, NEW_PASSWORD, NULL,
                                                   test_result_cb, &result);
  g_assert_true (fl_cognito_client_confirm_forgot_password_finish (client, test_wait_result (&result), &error));
  g_assert_no_error (error);

  tokens = sign_in (client, "forgetful-user", PASSWORD, NULL, &error);
  g_assert_null (tokens);
  assert_cognito_error (error, FL_COGNITO_ERROR_NOT_AUTHORIZED, "NotAuthorizedException");
  g_clear_error (&error);

  tokens = sign_in (client, "forgetful-user", NEW_PASSWORD, NULL, &error);
  g_assert_no_error (error);
  assert_tokens (tokens, "forgetful-user");
}

static void
test_global_sign_out (void)
{
  g_autoptr (FlCognitoClient) client = lab_client (lab.client_id, NULL);
  g_autoptr (FlCognitoTokens) tokens = NULL;
  g_autoptr (FlCognitoTokens) refreshed = NULL;
  g_autoptr (GAsyncResult)    result = NULL;
  g_autoptr (GError)          error = NULL;

  add_user ("leaving-user", PASSWORD);
  tokens = sign_in (client, "leaving-user", PASSWORD, NULL, &error);
  g_assert_no_error (error);

  /* the refresh token works before */
  refreshed = refresh (client, "leaving-user", tokens->refresh_token, &error);
  g_assert_no_error (error);
  g_assert_nonnull (refreshed);
  g_clear_pointer (&refreshed, fl_cognito_tokens_free);

  fl_cognito_client_global_sign_out_async (client, tokens->access_token, NULL, test_result_cb, &result);
  g_assert_true (fl_cognito_client_global_sign_out_finish (client, test_wait_result (&result), &error));
  g_assert_no_error (error);
  g_clear_object (&result);

  refreshed = refresh (client, "leaving-user", tokens->refresh_token, &error);
  g_assert_null (refreshed);
  assert_cognito_error (error, FL_COGNITO_ERROR_NOT_AUTHORIZED, "NotAuthorizedException");
  g_clear_error (&error);

  /* and the access token is dead too */
  fl_cognito_client_global_sign_out_async (client, tokens->access_token, NULL, test_result_cb, &result);
  g_assert_false (fl_cognito_client_global_sign_out_finish (client, test_wait_result (&result), &error));
  assert_cognito_error (error, FL_COGNITO_ERROR_NOT_AUTHORIZED, "NotAuthorizedException");
}

/* Programmer-side mistakes that come from configuration: errors, no
 * request. */
static void
test_bad_configuration (void)
{
  g_autoptr (FlCognitoClient) not_http = fl_cognito_client_new ("ftp://127.0.0.1/", lab.pool_id, lab.client_id, NULL);
  g_autoptr (FlCognitoClient) no_underscore = fl_cognito_client_new (lab.endpoint, "nounderscore", lab.client_id, NULL);
  g_autoptr (FlCognitoTokens) tokens = NULL;
  g_autoptr (GAsyncResult)    result = NULL;
  g_autoptr (GError)          error = NULL;

  tokens = sign_in (not_http, "someone", PASSWORD, NULL, &error);
  g_assert_null (tokens);
  assert_cognito_error (error, FL_COGNITO_ERROR_INVALID_PARAMETER, NULL);
  g_assert_nonnull (strstr (error->message, "ftp://127.0.0.1/"));
  g_clear_error (&error);

  fl_cognito_client_forgot_password_async (not_http, "someone", NULL, test_result_cb, &result);
  g_assert_null (fl_cognito_client_forgot_password_finish (not_http, test_wait_result (&result), &error));
  assert_cognito_error (error, FL_COGNITO_ERROR_INVALID_PARAMETER, NULL);
  g_clear_error (&error);

  tokens = sign_in (no_underscore, "someone", PASSWORD, NULL, &error);
  g_assert_null (tokens);
  assert_cognito_error (error, FL_COGNITO_ERROR_INVALID_PARAMETER, NULL);
  g_assert_nonnull (strstr (error->message, "nounderscore"));
}

/* ---- servers that fail ---------------------------------------------------- */

typedef enum
{
  FAKE_TOKENS, /* a good AuthenticationResult */
  FAKE_HTML_200,
  FAKE_HTML_400,
  FAKE_JSON_ARRAY,
  FAKE_EMPTY_200,
  FAKE_EXPIRES_STRING,
  FAKE_TOKEN_CONTROL,
  FAKE_REDIRECT,
  FAKE_HUGE,
  FAKE_BAD_SRP_B,
  FAKE_MFA,
  FAKE_TYPE_HEADER, /* x-amzn-ErrorType of a type this client does not know */
  FAKE_TYPE_BODY,   /* only {"__type": "namespace#UserNotFoundException"} */
  FAKE_INTERNAL,    /* 500 InternalErrorException */
  FAKE_HANG,        /* never answers */
  FAKE_DROP,        /* closes the connection of SignUp, and of the first
                     * drop_refreshes refreshes */
} FakeMode;

typedef struct
{
  SoupServer *server;
  char       *endpoint;
  FakeMode    mode;
  guint       requests;
  guint       sign_ups;
  guint       refreshes;
  guint       drop_refreshes;
  GArray     *refresh_ports; /* the client's port of each refresh */
  guint       sign_up_port;
  GPtrArray  *paused;
  guint       redirected; /* requests to /elsewhere */
} Fake;

static const char tokens_answer[] = "{\"AuthenticationResult\":{\"AccessToken\":\"aaa.bbb.ccc\",\"ExpiresIn\":3600,"
                                    "\"IdToken\":\"iii.ddd.ttt\",\"RefreshToken\":\"rrr.eee.fff\",\"TokenType\":\"Bearer\"},"
                                    "\"ChallengeParameters\":{}}";

static guint
remote_port (SoupServerMessage *msg)
{
  GSocketAddress *address = soup_server_message_get_remote_address (msg);

  g_assert_true (G_IS_INET_SOCKET_ADDRESS (address));
  return g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (address));
}

static void
reply (SoupServerMessage *msg,
       guint              status,
       const char        *content_type,
       const char        *text)
{
  soup_server_message_set_status (msg, status, NULL);
  soup_server_message_set_response (msg, content_type, SOUP_MEMORY_COPY, text, strlen (text));
}

static void
drop_connection (SoupServerMessage *msg)
{
  g_autoptr (GIOStream) stream = soup_server_message_steal_connection (msg);

  g_assert_nonnull (stream);
  g_io_stream_close (stream, NULL, NULL);
}

static void
fake_handler (SoupServer        *server,
              SoupServerMessage *msg,
              const char        *path,
              GHashTable        *query,
              gpointer           user_data)
{
  Fake               *fake = user_data;
  const char         *target = soup_message_headers_get_one (soup_server_message_get_request_headers (msg), "X-Amz-Target");
  SoupMessageBody    *body = soup_server_message_get_request_body (msg);
  g_autoptr (GBytes)  bytes = soup_message_body_flatten (body);
  g_autofree char    *text = g_strndup (g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes));
  SoupMessageHeaders *response_headers = soup_server_message_get_response_headers (msg);

  fake->requests++;
  g_assert_cmpstr (soup_server_message_get_method (msg), ==, "POST");
  g_assert_nonnull (target);
  g_assert_true (g_str_has_prefix (target, "AWSCognitoIdentityProviderService."));
  g_assert_cmpstr (soup_message_headers_get_content_type (soup_server_message_get_request_headers (msg), NULL), ==,
                   "application/x-amz-json-1.1");

  switch (fake->mode)
    {
    case FAKE_TOKENS:
      reply (msg, 200, "application/x-amz-json-1.1", tokens_answer);
      break;
    case FAKE_HTML_200:
      reply (msg, 200, "text/html", "<html><body>Welcome to the captive portal</body></html>");
      break;
    case FAKE_HTML_400:
      reply (msg, 400, "text/html", "<html><body>Bad request</body></html>");
      break;
    case FAKE_JSON_ARRAY:
      reply (msg, 200, "application/x-amz-json-1.1", "[1, 2, 3]");
      break;
    case FAKE_EMPTY_200:
      reply (msg, 200, "application/x-amz-json-1.1", "");
      break;
    case FAKE_EXPIRES_STRING:
      reply (msg, 200, "application/x-amz-json-1.1",
             "{\"AuthenticationResult\":{\"AccessToken\":\"a.b.c\",\"ExpiresIn\":\"3600\",\"IdToken\":\"i.d.t\","
             "\"RefreshToken\":\"r.e.f\"}}");
      break;
    case FAKE_TOKEN_CONTROL:
      reply (msg, 200, "application/x-amz-json-1.1",
             "{\"AuthenticationResult\":{\"AccessToken\":\"a.b\\nc\",\"ExpiresIn\":3600,\"IdToken\":\"i.d.t\","
             "\"RefreshToken\":\"r.e.f\"}}");
      break;
    case FAKE_REDIRECT:
      soup_message_headers_replace (response_headers, "Location", "/elsewhere");
      reply (msg, 302, "text/plain", "elsewhere");
      break;
    case FAKE_HUGE:
      {
        GString *huge = g_string_new ("{\"padding\":\"");

        while (huge->len < 300 * 1024)
          g_string_append (huge, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        g_string_append (huge, "\"}");
        reply (msg, 200, "application/x-amz-json-1.1", huge->str);
        g_string_free (huge, TRUE);
      }
      break;
    case FAKE_BAD_SRP_B:
      reply (msg, 200, "application/x-amz-json-1.1",
             "{\"ChallengeName\":\"PASSWORD_VERIFIER\",\"ChallengeParameters\":{\"SALT\":\"abcdef\","
             "\"SRP_B\":\"not hex\",\"SECRET_BLOCK\":\"c2VjcmV0\",\"USER_ID_FOR_SRP\":\"someone\"}}");
      break;
    case FAKE_MFA:
      reply (msg, 200, "application/x-amz-json-1.1",
             "{\"ChallengeName\":\"SOFTWARE_TOKEN_MFA\",\"Session\":\"sss\",\"ChallengeParameters\":{}}");
      break;
    case FAKE_TYPE_HEADER:
      soup_message_headers_replace (response_headers, "x-amzn-ErrorType",
                                    "SomethingNewException:http://internal.amazon.com/coral/com.amazon.coral.validate/");
      reply (msg, 400, "application/x-amz-json-1.1", "{\"message\":\"Something new\\nhappened\"}");
      break;
    case FAKE_TYPE_BODY:
      reply (msg, 400, "application/x-amz-json-1.1",
             "{\"__type\":\"com.amazonaws.cognito.identity.idp.model#UserNotFoundException\","
             "\"message\":\"User does not exist.\"}");
      break;
    case FAKE_INTERNAL:
      soup_message_headers_replace (response_headers, "x-amzn-ErrorType", "InternalErrorException");
      reply (msg, 500, "application/x-amz-json-1.1",
             "{\"__type\":\"InternalErrorException\",\"message\":\"An internal error occurred.\"}");
      break;
    case FAKE_HANG:
      soup_server_message_pause (msg);
      g_ptr_array_add (fake->paused, g_object_ref (msg));
      break;
    case FAKE_DROP:
      if (g_str_equal (target, "AWSCognitoIdentityProviderService.SignUp"))
        {
          fake->sign_ups++;
          fake->sign_up_port = remote_port (msg);
          drop_connection (msg);
        }
      else if (strstr (text, "\"REFRESH_TOKEN_AUTH\"") != NULL)
        {
          guint port = remote_port (msg);

          fake->refreshes++;
          g_array_append_val (fake->refresh_ports, port);
          if (fake->drop_refreshes > 0)
            {
              fake->drop_refreshes--;
              drop_connection (msg);
            }
          else
            reply (msg, 200, "application/x-amz-json-1.1", tokens_answer);
        }
      else
        reply (msg, 400, "text/plain", "unexpected");
      break;
    default:
      g_assert_not_reached ();
    }
}

/* Where FAKE_REDIRECT points: tokens for anything */
static void
elsewhere_handler (SoupServer        *server,
                   SoupServerMessage *msg,
                   const char        *path,
                   GHashTable        *query,
                   gpointer           user_data)
{
  Fake *fake = user_data;

  fake->redirected++;
  reply (msg, 200, "application/x-amz-json-1.1", tokens_answer);
}

static Fake *
fake_new (GTlsCertificate *certificate)
{
  g_autoptr (GError) error = NULL;
  Fake              *fake = g_new0 (Fake, 1);
  GSList            *uris;

  fake->server = soup_server_new ("tls-certificate", certificate, NULL);
  soup_server_add_handler (fake->server, NULL, fake_handler, fake, NULL);
  soup_server_add_handler (fake->server, "/elsewhere", elsewhere_handler, fake, NULL);
  soup_server_listen_local (fake->server, 0,
                            SOUP_SERVER_LISTEN_IPV4_ONLY | (certificate != NULL ? SOUP_SERVER_LISTEN_HTTPS : 0),
                            &error);
  g_assert_no_error (error);
  uris = soup_server_get_uris (fake->server);
  g_assert_nonnull (uris);
  fake->endpoint = g_uri_to_string (uris->data);
  g_slist_free_full (uris, (GDestroyNotify) g_uri_unref);
  fake->refresh_ports = g_array_new (FALSE, FALSE, sizeof (guint));
  fake->paused = g_ptr_array_new_with_free_func (g_object_unref);

  return fake;
}

static void
fake_free (Fake *fake)
{
  soup_server_disconnect (fake->server);
  g_clear_object (&fake->server);
  g_ptr_array_unref (fake->paused);
  g_array_unref (fake->refresh_ports);
  g_free (fake->endpoint);
  g_free (fake);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Fake, fake_free)

static FlCognitoClient *
fake_client (Fake *fake)
{
  return fl_cognito_client_new (fake->endpoint, "local_Fake123", "fake-client", NULL);
}

/* A port on 127.0.0.1 where nothing listens */
static guint
closed_port (void)
{
  g_autoptr (GError)         error = NULL;
  g_autoptr (GSocket)        socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP,
                                                    &error);
  g_autoptr (GInetAddress)   loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr (GSocketAddress) any = g_inet_socket_address_new (loopback, 0);
  g_autoptr (GSocketAddress) bound = NULL;
  guint                      port;

  g_assert_no_error (error);
  g_socket_bind (socket, any, FALSE, &error);
  g_assert_no_error (error);
  bound = g_socket_get_local_address (socket, &error);
  g_assert_no_error (error);
  port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  /* bound but never listening, then closed: connections are refused */
  g_socket_close (socket, &error);
  g_assert_no_error (error);

  return port;
}

static void
test_unreachable (void)
{
  g_autofree char            *endpoint = g_strdup_printf ("http://127.0.0.1:%u/", closed_port ());
  g_autoptr (FlCognitoClient) client = fl_cognito_client_new (endpoint, lab.pool_id, lab.client_id, NULL);
  g_autoptr (FlCognitoTokens) tokens = NULL;
  g_autoptr (GAsyncResult)    result = NULL;
  g_autoptr (GError)          error = NULL;
  gint64                      start = g_get_monotonic_time ();
  gboolean                    confirmed = TRUE;

  tokens = sign_in (client, "someone", PASSWORD, NULL, &error);
  g_assert_null (tokens);
  assert_cognito_error (error, FL_COGNITO_ERROR_NETWORK, NULL);
  g_assert_nonnull (strstr (error->message, "127.0.0.1"));
  g_assert_cmpint (g_get_monotonic_time () - start, <, 5 * G_USEC_PER_SEC);
  g_clear_error (&error);

  g_assert_false (sign_up (client, "someone", PASSWORD, NULL, &confirmed, NULL, &error));
  assert_cognito_error (error, FL_COGNITO_ERROR_NETWORK, NULL);
  g_assert_false (confirmed);
  g_clear_error (&error);

  fl_cognito_client_global_sign_out_async (client, "aaa.bbb.ccc", NULL, test_result_cb, &result);
  g_assert_false (fl_cognito_client_global_sign_out_finish (client, test_wait_result (&result), &error));
  assert_cognito_error (error, FL_COGNITO_ERROR_NETWORK, NULL);
}

/* A self-signed certificate for 127.0.0.1, made with the openssl
 * command; blocking, before any server runs. */
static GTlsCertificate *
make_certificate (const char *dir)
{
  g_autoptr (GError) error = NULL;
  g_autofree char   *err_text = NULL;
  g_autofree char   *cert_file = g_build_filename (dir, "cert.pem", NULL);
  g_autofree char   *key_file = g_build_filename (dir, "key.pem", NULL);
  GTlsCertificate   *certificate;
  int                wait_status = 0;
  const char        *argv[] = {
           "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
           "-keyout", key_file, "-out", cert_file, "-days", "2",
           "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
           NULL
  };

  g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL,
                NULL, NULL, NULL, &err_text, &wait_status, &error);
  g_assert_no_error (error);
  if (!g_spawn_check_wait_status (wait_status, &error))
    g_error ("openssl failed: %s\n%s", error->message, err_text);

  certificate = g_tls_certificate_new_from_files (cert_file, key_file, &error);
  g_assert_no_error (error);
  g_assert_nonnull (certificate);

  return certificate;
}

static void
test_tls_untrusted (void)
{
  g_autoptr (GError)          error = NULL;
  g_autofree char            *dir = g_dir_make_tmp ("fieldline-cognito-tls-XXXXXX", &error);
  g_autoptr (GTlsCertificate) certificate = NULL;
  g_autoptr (Fake)            fake = NULL;
  g_autoptr (FlCognitoClient) client = NULL;
  g_autoptr (FlCognitoTokens) tokens = NULL;

  g_assert_no_error (error);
  certificate = make_certificate (dir);
  fake = fake_new (certificate);
  g_assert_true (g_str_has_prefix (fake->endpoint, "https://127.0.0.1:"));
  fake->mode = FAKE_TOKENS;

  client = fake_client (fake);
  tokens = sign_in (client, "someone", PASSWORD, NULL, &error);
  g_assert_null (tokens);
  assert_cognito_error (error, FL_COGNITO_ERROR_TLS, NULL);
  g_assert_nonnull (strstr (error->message, "not trusted"));
  g_assert_nonnull (strstr (error->message, "known authority"));
  /* nothing reached the server */
  g_assert_cmpuint (fake->requests, ==, 0);
  g_clear_error (&error);

  /* the same server without TLS: the client is fine with its answer */
  g_clear_object (&client);
  g_clear_pointer (&fake, fake_free);
  fake = fake_new (NULL);
  fake->mode = FAKE_TOKENS;
  client = fake_client (fake);
  tokens = refresh (client, "someone", "rrr", &error);
  g_assert_no_error (error);
  g_assert_nonnull (tokens);
  g_assert_cmpstr (tokens->access_token, ==, "aaa.bbb.ccc");
  g_assert_cmpuint (fake->requests, ==, 1);
  g_clear_pointer (&tokens, fl_cognito_tokens_free);

  test_rm_rf (dir);
}

/* Answers that are not Cognito's: PROTOCOL, whatever the operation */
static void
test_not_cognito (void)
{
  static const FakeMode modes[] = {
    FAKE_HTML_200,
    FAKE_HTML_400,
    FAKE_JSON_ARRAY,
    FAKE_EMPTY_200,
    FAKE_EXPIRES_STRING,
    FAKE_TOKEN_CONTROL,
    FAKE_REDIRECT,
    FAKE_HUGE,
  };
  g_autoptr (Fake)            fake = fake_new (NULL);
  g_autoptr (FlCognitoClient) client = fake_client (fake);

  for (guint i = 0; i < G_N_ELEMENTS (modes); i++)
    {
      g_autoptr (FlCognitoTokens) tokens = NULL;
      g_autoptr (GAsyncResult)    result = NULL;
      g_autoptr (GError)          error = NULL;
      g_autofree char            *destination = NULL;

      g_test_message ("mode %d", modes[i]);
      fake->mode = modes[i];
      fake->requests = 0;

      tokens = refresh (client, "someone", "rrr", &error);
      g_assert_null (tokens);
      assert_cognito_error (error, FL_COGNITO_ERROR_PROTOCOL, NULL);
      g_assert_cmpuint (fake->requests, ==, 1);
      if (modes[i] == FAKE_HUGE)
        g_assert_nonnull (strstr (error->message, "more than"));
      g_clear_error (&error);

      fl_cognito_client_forgot_password_async (client, "someone", NULL, test_result_cb, &result);
      destination = fl_cognito_client_forgot_password_finish (client, test_wait_result (&result), &error);
      g_assert_null (destination);
      assert_cognito_error (error, FL_COGNITO_ERROR_PROTOCOL, NULL);
      g_assert_cmpuint (fake->requests, ==, 2);
    }
  /* a redirect is not followed */
  g_assert_cmpuint (fake->redirected, ==, 0);
}

/* A server that does not speak HTTP (nor TLS) at all: it greets every
 * connection with garbage */
typedef struct
{
  GSocketService *service;
  GPtrArray      *connections;
  guint           port;
} Garbage;

static gboolean
garbage_incoming_cb (GSocketService    *service,
                     GSocketConnection *connection,
                     GObject           *source_object,
                     gpointer           user_data)
{
  Garbage           *garbage = user_data;
  g_autoptr (GError) error = NULL;
  static const char  text[] = "garbage, and more garbage\r\n\r\n";
  GOutputStream     *out = g_io_stream_get_output_stream (G_IO_STREAM (connection));

  /* a few bytes to a fresh socket do not block */
  g_output_stream_write_all (out, text, strlen (text), NULL, NULL, &error);
  g_assert_no_error (error);
  /* kept open until the client has given up */
  g_ptr_array_add (garbage->connections, g_object_ref (connection));
  return TRUE;
}

static Garbage *
garbage_new (void)
{
  Garbage                   *garbage = g_new0 (Garbage, 1);
  g_autoptr (GInetAddress)   loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr (GSocketAddress) any = g_inet_socket_address_new (loopback, 0);
  g_autoptr (GSocketAddress) bound = NULL;
  g_autoptr (GError)         error = NULL;

  garbage->service = g_socket_service_new ();
  garbage->connections = g_ptr_array_new_with_free_func (g_object_unref);
  g_socket_listener_add_address (G_SOCKET_LISTENER (garbage->service), any, G_SOCKET_TYPE_STREAM,
                                 G_SOCKET_PROTOCOL_TCP, NULL, &bound, &error);
  g_assert_no_error (error);
  garbage->port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  g_signal_connect (garbage->service, "incoming", G_CALLBACK (garbage_incoming_cb), garbage);
  g_socket_service_start (garbage->service);

  return garbage;
}

static void
garbage_free (Garbage *garbage)
{
  g_socket_service_stop (garbage->service);
  g_socket_listener_close (G_SOCKET_LISTENER (garbage->service));
  g_clear_object (&garbage->service);
  g_ptr_array_unref (garbage->connections);
  g_free (garbage);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Garbage, garbage_free)

static void
test_garbage (void)
{
  g_autoptr (Garbage)         garbage = garbage_new ();
  g_autofree char            *endpoint = g_strdup_printf ("http://127.0.0.1:%u/", garbage->port);
  g_autoptr (FlCognitoClient) client = fl_cognito_client_new (endpoint, "local_Fake123", "fake-client", NULL);
  g_autoptr (FlCognitoTokens) tokens = NULL;
  g_autoptr (GError)          error = NULL;

  tokens = sign_in (client, "someone", PASSWORD, NULL, &error);
  g_assert_null (tokens);
  assert_cognito_error (error, FL_COGNITO_ERROR_PROTOCOL, NULL);
  g_assert_cmpuint (garbage->connections->len, ==, 1);
}

/* https:// to a server that answers in plain text */
static void
test_tls_not_tls (void)
{
  g_autoptr (Garbage)         garbage = garbage_new ();
  g_autofree char            *endpoint = g_strdup_printf ("https://127.0.0.1:%u/", garbage->port);
  g_autoptr (FlCognitoClient) client = fl_cognito_client_new (endpoint, "local_Fake123", "fake-client", NULL);
  g_autoptr (FlCognitoTokens) tokens = NULL;
  g_autoptr (GError)          error = NULL;

  tokens = refresh (client, "someone", "rrr", &error);
  g_assert_null (tokens);
  assert_cognito_error (error, FL_COGNITO_ERROR_TLS, NULL);
  g_assert_cmpuint (garbage->connections->len, ==, 1);
}

/* Cognito errors of every shape */
static void
test_error_types (void)
{
  g_autoptr (Fake)            fake = fake_new (NULL);
  g_autoptr (FlCognitoClient) client = fake_client (fake);
  g_autoptr (FlCognitoTokens) tokens = NULL;
  g_autoptr (GError)          error = NULL;
  g_autoptr (GError)          copy = NULL;

  fake->mode = FAKE_TYPE_HEADER;
  tokens = refresh (client, "someone", "rrr", &error);
  g_assert_null (tokens);
  assert_cognito_error (error, FL_COGNITO_ERROR_OTHER, "SomethingNewException");
  g_assert_cmpstr (error->message, ==, "SomethingNewException: Something new happened");
  /* the type name survives a copy */
  copy = g_error_copy (error);
  g_assert_cmpstr (fl_cognito_error_get_type_name (copy), ==, "SomethingNewException");
  g_clear_error (&error);

  fake->mode = FAKE_TYPE_BODY;
  tokens = refresh (client, "someone", "rrr", &error);
  g_assert_null (tokens);
  assert_cognito_error (error, FL_COGNITO_ERROR_USER_NOT_FOUND, "UserNotFoundException");
  g_assert_cmpstr (error->message, ==, "User does not exist.");
  g_clear_error (&error);

  fake->mode = FAKE_INTERNAL;
  tokens = refresh (client, "someone", "rrr", &error);
  g_assert_null (tokens);
  assert_cognito_error (error, FL_COGNITO_ERROR_OTHER, "InternalErrorException");
  g_clear_error (&error);

  /* sign-in steps this client does not do */
  fake->mode = FAKE_MFA;
  tokens = sign_in (client, "someone", PASSWORD, NULL, &error);
  g_assert_null (tokens);
  assert_cognito_error (error, FL_COGNITO_ERROR_OTHER, NULL);
  g_assert_nonnull (strstr (error->message, "SOFTWARE_TOKEN_MFA"));
  g_clear_error (&error);

  fake->mode = FAKE_BAD_SRP_B;
  tokens = sign_in (client, "someone", PASSWORD, NULL, &error);
  g_assert_null (tokens);
  assert_cognito_error (error, FL_COGNITO_ERROR_PROTOCOL, NULL);
  g_clear_error (&error);

  /* not errors of this domain */
  g_assert_null (fl_cognito_error_get_type_name (NULL));
  error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_FAILED, "other");
  g_assert_null (fl_cognito_error_get_type_name (error));
}

/* InitiateAuth for a refresh goes on a kept-alive connection and is sent
 * again, on a new connection, when that one turns out to be closed;
 * SignUp goes on a connection of its own and is never sent twice. */
static void
test_resend_only_safe (void)
{
  g_autoptr (Fake)            fake = fake_new (NULL);
  g_autoptr (FlCognitoClient) client = fake_client (fake);
  g_autoptr (FlCognitoTokens) tokens = NULL;
  g_autoptr (GError)          error = NULL;
  guint                       first_port;

  fake->mode = FAKE_DROP;

  tokens = refresh (client, "someone", "rrr", &error);
  g_assert_no_error (error);
  g_assert_nonnull (tokens);
  g_clear_pointer (&tokens, fl_cognito_tokens_free);
  g_assert_cmpuint (fake->refreshes, ==, 1);
  first_port = g_array_index (fake->refresh_ports, guint, 0);

  fake->drop_refreshes = 1;
  tokens = refresh (client, "someone", "rrr", &error);
  g_assert_no_error (error);
  g_assert_nonnull (tokens);
  g_clear_pointer (&tokens, fl_cognito_tokens_free);
  g_assert_cmpuint (fake->refreshes, ==, 3);
  /* kept alive, then a new connection */
  g_assert_cmpuint (g_array_index (fake->refresh_ports, guint, 1), ==, first_port);
  g_assert_cmpuint (g_array_index (fake->refresh_ports, guint, 2), !=, first_port);

  g_assert_false (sign_up (client, "someone", PASSWORD, "someone@example.org", NULL, NULL, &error));
  assert_cognito_error (error, FL_COGNITO_ERROR_NETWORK, NULL);
  g_assert_cmpuint (fake->sign_ups, ==, 1);
  /* not on the kept-alive connection of the last refresh */
  g_assert_cmpuint (fake->sign_up_port, !=, g_array_index (fake->refresh_ports, guint, 2));
}

static gboolean
has_requests (gpointer data)
{
  Fake *fake = data;

  return fake->requests > 0;
}

static void
test_cancel (void)
{
  g_autoptr (Fake)               fake = fake_new (NULL);
  g_autoptr (FlCognitoClient)    client = fake_client (fake);
  g_autoptr (GCancellable)       cancellable = g_cancellable_new ();
  g_autoptr (GAsyncResult)       result = NULL;
  g_autoptr (GError)             error = NULL;
  g_autoptr (FlCognitoChallenge) challenge = NULL;
  FlCognitoTokens               *tokens;

  fake->mode = FAKE_HANG;
  fl_cognito_client_sign_in_async (client, "someone", PASSWORD, cancellable, test_result_cb, &result);
  test_wait_until (has_requests, fake, 10000, "the request");
  g_assert_null (result);
  g_cancellable_cancel (cancellable);
  tokens = fl_cognito_client_sign_in_finish (client, test_wait_result (&result), &challenge, &error);
  g_assert_null (tokens);
  g_assert_null (challenge);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
}

int
main (int   argc,
      char *argv[])
{
  int ret;

  g_test_init (&argc, &argv, NULL);

  lab_start ();

  g_test_add_func ("/fieldline/cognito-client/sign-in-srp", test_sign_in_srp);
  g_test_add_func ("/fieldline/cognito-client/sign-in-wrong-password", test_sign_in_wrong_password);
  g_test_add_func ("/fieldline/cognito-client/sign-in-unconfirmed", test_sign_in_unconfirmed);
  g_test_add_func ("/fieldline/cognito-client/sign-in-password-fallback", test_sign_in_password_fallback);
  g_test_add_func ("/fieldline/cognito-client/client-secret", test_client_secret);
  g_test_add_func ("/fieldline/cognito-client/unknown-client", test_unknown_client);
  g_test_add_func ("/fieldline/cognito-client/new-password-required", test_new_password_required);
  g_test_add_func ("/fieldline/cognito-client/refresh", test_refresh);
  g_test_add_func ("/fieldline/cognito-client/sign-up-and-confirm", test_sign_up_and_confirm);
  g_test_add_func ("/fieldline/cognito-client/forgot-password", test_forgot_password);
  g_test_add_func ("/fieldline/cognito-client/global-sign-out", test_global_sign_out);
  g_test_add_func ("/fieldline/cognito-client/bad-configuration", test_bad_configuration);
  g_test_add_func ("/fieldline/cognito-client/unreachable", test_unreachable);
  g_test_add_func ("/fieldline/cognito-client/tls-untrusted", test_tls_untrusted);
  g_test_add_func ("/fieldline/cognito-client/tls-not-tls", test_tls_not_tls);
  g_test_add_func ("/fieldline/cognito-client/not-cognito", test_not_cognito);
  g_test_add_func ("/fieldline/cognito-client/garbage", test_garbage);
  g_test_add_func ("/fieldline/cognito-client/error-types", test_error_types);
  g_test_add_func ("/fieldline/cognito-client/resend-only-safe", test_resend_only_safe);
  g_test_add_func ("/fieldline/cognito-client/cancel", test_cancel);

  ret = g_test_run ();

  lab_stop ();

  return ret;
}
