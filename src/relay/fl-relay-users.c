/* fl-relay-users.c: /users, where admins manage the pool's operators.
 *
 *   GET   /users            the users, by name
 *   POST  /users            {username, email, group, temporaryPassword}:
 *                           a user who chooses a password at the first
 *                           sign-in (NEW_PASSWORD_REQUIRED)
 *   GET   /users/{name}     one user
 *   PATCH /users/{name}     {group?, enabled?}
 *
 * Admins only (the caller checks).  The pool's calls are blocking, so they
 * run on its worker threads.
 */
#define G_LOG_DOMAIN "fl-relay"

#include "config.h"

#include <string.h>

#include "fl-relay-private.h"

typedef enum {
  USERS_LIST,
  USERS_GET,
  USERS_CREATE,
  USERS_UPDATE,
} UsersOp;

typedef struct
{
  UsersOp   op;
  char     *name;
  char     *email;
  char     *password;
  FlRole    role;
  gboolean  set_role;
  gboolean  enabled;
  gboolean  set_enabled;
} UsersCall;

static void
users_call_free (UsersCall *call)
{
  g_free (call->name);
  g_free (call->email);
  if (call->password != NULL)
    memset (call->password, 0, strlen (call->password));
  g_free (call->password);
  g_free (call);
}

static void
users_thread (GTask        *task,
              gpointer      source_object,
              gpointer      task_data,
              GCancellable *cancellable)
{
  FlUserPool *pool = source_object;
  UsersCall  *call = task_data;
  GError     *error = NULL;
  JsonNode   *answer = NULL;

  switch (call->op)
    {
    case USERS_LIST:
      answer = fl_user_pool_list_users (pool, &error);
      break;
    case USERS_CREATE:
      if (fl_user_pool_create_user (pool, call->name, call->email, call->password, TRUE, call->role, &error))
        answer = fl_user_pool_get_user_json (pool, call->name, &error);
      break;
    case USERS_UPDATE:
      if ((!call->set_role || fl_user_pool_set_user_role (pool, call->name, call->role, &error)) &&
          (!call->set_enabled || fl_user_pool_set_user_enabled (pool, call->name, call->enabled, &error)))
        answer = fl_user_pool_get_user_json (pool, call->name, &error);
      break;
    case USERS_GET:
    default:
      answer = fl_user_pool_get_user_json (pool, call->name, &error);
      break;
    }

  if (answer == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, answer, (GDestroyNotify) json_node_unref);
}

typedef struct
{
  FlRequest *request;
  guint      status;
} Reply;

static void
users_done_cb (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  g_autofree Reply    *reply = user_data;
  g_autoptr (GError)   error = NULL;
  g_autoptr (JsonNode) answer = g_task_propagate_pointer (G_TASK (result), &error);
  g_autofree char     *text = NULL;

  if (answer == NULL)
    {
      _fl_request_fail (reply->request, error);
      return;
    }
  text = fl_json_to_string (answer, NULL);
  _fl_request_reply (reply->request, reply->status, g_string_new (text));
}

static void
run (FlRelay           *self,
     SoupServerMessage *msg,
     UsersCall         *call)
{
  Reply *reply = g_new0 (Reply, 1);

  reply->request = _fl_request_new (self, msg, NULL);
  reply->status = call->op == USERS_CREATE ? 201 : 200;
  fl_user_pool_run_async (self->pool, users_thread, call, (GDestroyNotify) users_call_free, NULL,
                          users_done_cb, reply);
}

/* Reads "group" (admin, operator, viewer or null for none) */
static gboolean
read_group (JsonObject *body,
            FlRole     *role,
            gboolean   *present,
            GError    **error)
{
  JsonNode *node = json_object_get_member (body, "group");

  *present = node != NULL;
  *role = FL_ROLE_NONE;
  if (node == NULL || JSON_NODE_HOLDS_NULL (node))
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING ||
      !fl_role_from_string (json_node_get_string (node), role))
    {
      g_set_error_literal (error, FL_API_ERROR, FL_API_ERROR_INVALID_PARAMETER,
                           "Field “group” must be admin, operator, viewer or null");
      return FALSE;
    }
  return TRUE;
}

static gboolean
read_string (JsonObject  *body,
             const char  *name,
             gboolean     required,
             const char **value,
             GError     **error)
{
  JsonNode *node = json_object_get_member (body, name);

  *value = NULL;
  if (node == NULL || JSON_NODE_HOLDS_NULL (node))
    {
      if (required)
        g_set_error (error, FL_API_ERROR, FL_API_ERROR_INVALID_PARAMETER, "Field “%s” is required", name);
      return !required;
    }
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
    {
      g_set_error (error, FL_API_ERROR, FL_API_ERROR_INVALID_PARAMETER, "Field “%s” must be a string", name);
      return FALSE;
    }
  *value = json_node_get_string (node);
  return TRUE;
}

void
_fl_relay_handle_users (FlRelay           *self,
                        SoupServerMessage *msg,
                        const char        *name,
                        FlPrincipal       *principal)
{
  g_autoptr (JsonObject) body = NULL;
  g_autoptr (GError)     error = NULL;
  UsersCall             *call;

  if (name == NULL && g_str_equal (soup_server_message_get_method (msg), "GET"))
    {
      call = g_new0 (UsersCall, 1);
      call->op = USERS_LIST;
      return run (self, msg, call);
    }
  if (name != NULL && g_str_equal (soup_server_message_get_method (msg), "GET"))
    {
      call = g_new0 (UsersCall, 1);
      call->op = USERS_GET;
      call->name = g_strdup (name);
      return run (self, msg, call);
    }

  if ((body = _fl_read_json_object (msg, &error)) == NULL)
    return fl_http_reply_error (msg, error);

  call = g_new0 (UsersCall, 1);
  if (name == NULL)
    {
      const char *username, *email, *password;
      gboolean    present;

      call->op = USERS_CREATE;
      if (!read_string (body, "username", TRUE, &username, &error) ||
          !read_string (body, "email", FALSE, &email, &error) ||
          !read_string (body, "temporaryPassword", TRUE, &password, &error) ||
          !read_group (body, &call->role, &present, &error))
        goto fail;
      if (!present)
        call->role = FL_ROLE_VIEWER;
      call->name = g_strdup (username);
      call->email = g_strdup (email);
      call->password = g_strdup (password);
      return run (self, msg, call);
    }

  call->op = USERS_UPDATE;
  call->name = g_strdup (name);
  if (!read_group (body, &call->role, &call->set_role, &error))
    goto fail;
  {
    JsonNode *node = json_object_get_member (body, "enabled");

    if (node != NULL)
      {
        if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_BOOLEAN)
          {
            g_set_error_literal (&error, FL_API_ERROR, FL_API_ERROR_INVALID_PARAMETER,
                                 "Field “enabled” must be true or false");
            goto fail;
          }
        call->set_enabled = TRUE;
        call->enabled = json_node_get_boolean (node);
      }
  }
  if (!call->set_role && !call->set_enabled)
    {
      g_set_error_literal (&error, FL_API_ERROR, FL_API_ERROR_INVALID_PARAMETER,
                           "Nothing to change: send “group” and/or “enabled”");
      goto fail;
    }
  /* an admin cannot lock themselves out */
  if (g_ascii_strcasecmp (name, principal->username) == 0 &&
      ((call->set_enabled && !call->enabled) || (call->set_role && call->role != FL_ROLE_ADMIN)))
    {
      g_set_error_literal (&error, FL_API_ERROR, FL_API_ERROR_CONFLICT,
                           "You cannot disable yourself or give up your own admin role");
      goto fail;
    }
  return run (self, msg, call);

fail:
  users_call_free (call);
  fl_http_reply_error (msg, error);
}
