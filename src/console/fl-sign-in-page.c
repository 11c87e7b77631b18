/* fl-sign-in-page.c: choosing or adding a connection profile and signing
 * in to it. */
#define G_LOG_DOMAIN "fl-sign-in-page"

#include "config.h"

#include <string.h>

#include <glib/gi18n.h>

#include "fl-cognito-client.h"
#include "fl-sign-in-page.h"
#include "fl-a11y.h"
#include "fl-token-store.h"

struct _FlSignInPage
{
  AdwBin              parent_instance;

  FlProfileStore     *store;
  GCancellable       *cancellable;
  FlCognitoChallenge *challenge;        /* NEW_PASSWORD_REQUIRED */
  char               *pending_password; /* from sign-up, to sign in after confirming */
  char               *error;
  char               *destination;      /* where the last code went */
  gboolean            busy;

  /* template */
  GtkWidget          *back_button;
  GtkWidget          *spinner;
  GtkLabel           *heading;
  GtkLabel           *description;
  GtkRevealer        *notice_revealer;
  GtkLabel           *notice_label;
  GtkRevealer        *error_revealer;
  GtkWidget          *error_box;
  GtkLabel           *error_label;
  GtkButton          *error_action_button;
  GtkStack           *form_stack;
  AdwComboRow        *profile_row;
  AdwEntryRow        *username_row;
  AdwEntryRow        *password_row;
  GtkWidget          *sign_in_button;
  AdwEntryRow        *new_password_row;
  AdwEntryRow        *new_password_confirm_row;
  AdwEntryRow        *sign_up_username_row;
  AdwEntryRow        *sign_up_email_row;
  AdwEntryRow        *sign_up_password_row;
  AdwEntryRow        *confirm_username_row;
  AdwEntryRow        *confirm_code_row;
  AdwEntryRow        *forgot_username_row;
  AdwEntryRow        *reset_code_row;
  AdwEntryRow        *reset_password_row;
  AdwComboRow        *kind_row;
  GtkWidget          *lab_group;
  GtkWidget          *cloud_group;
  AdwEntryRow        *lab_url_row;
  AdwEntryRow        *cloud_name_row;
  AdwEntryRow        *cloud_region_row;
  AdwEntryRow        *cloud_pool_row;
  AdwEntryRow        *cloud_client_row;
  AdwEntryRow        *cloud_api_row;
  AdwEntryRow        *cloud_websocket_row;
};

G_DEFINE_FINAL_TYPE (FlSignInPage, fl_sign_in_page, ADW_TYPE_BIN)

enum {
  PROP_0,
  PROP_STORE,
  PROP_PROFILE,
  PROP_BUSY,
  PROP_ERROR,
  PROP_FORM,
  N_PROPS
};

enum {
  SIGNED_IN,
  N_SIGNALS
};

static GParamSpec *properties[N_PROPS];
static guint       signals[N_SIGNALS];

/* The actions that start a request, disabled while one runs. */
static const char *const request_actions[] = {
  "sign-in.sign-in",
  "sign-in.new-password",
  "sign-in.sign-up",
  "sign-in.confirm",
  "sign-in.resend-code",
  "sign-in.forgot-password",
  "sign-in.reset-password",
  "sign-in.save-profile",
};

/* ---- helpers ----------------------------------------------------------- */

static const char *
row_text (AdwEntryRow *row)
{
  return gtk_editable_get_text (GTK_EDITABLE (row));
}

static char *
row_dup_stripped (AdwEntryRow *row)
{
  return g_strstrip (g_strdup (row_text (row)));
}

static void
row_clear (AdwEntryRow *row)
{
  gtk_editable_set_text (GTK_EDITABLE (row), "");
}

static void
row_set_invalid (AdwEntryRow *row,
                 gboolean     invalid)
{
  if (invalid)
    {
      gtk_widget_add_css_class (GTK_WIDGET (row), "error");
      gtk_accessible_update_state (GTK_ACCESSIBLE (row), GTK_ACCESSIBLE_STATE_INVALID,
                                   GTK_ACCESSIBLE_INVALID_TRUE, -1);
    }
  else
    {
      gtk_widget_remove_css_class (GTK_WIDGET (row), "error");
      gtk_accessible_reset_state (GTK_ACCESSIBLE (row), GTK_ACCESSIBLE_STATE_INVALID);
    }
}

static void
wipe_free (char *str)
{
  if (str != NULL)
    {
      explicit_bzero (str, strlen (str));
      g_free (str);
    }
}

static AdwEntryRow *
all_rows (FlSignInPage *self,
          guint         i)
{
  AdwEntryRow *rows[] = {
    self->username_row, self->password_row, self->new_password_row, self->new_password_confirm_row,
    self->sign_up_username_row, self->sign_up_email_row, self->sign_up_password_row,
    self->confirm_username_row, self->confirm_code_row, self->forgot_username_row,
    self->reset_code_row, self->reset_password_row, self->lab_url_row, self->cloud_name_row,
    self->cloud_region_row, self->cloud_pool_row, self->cloud_client_row, self->cloud_api_row,
    self->cloud_websocket_row,
  };

  return i < G_N_ELEMENTS (rows) ? rows[i] : NULL;
}

static void
clear_invalid (FlSignInPage *self)
{
  AdwEntryRow *row;

  for (guint i = 0; (row = all_rows (self, i)) != NULL; i++)
    row_set_invalid (row, FALSE);
}

/* ---- notice and error ------------------------------------------------- */

static void
set_error_full (FlSignInPage *self,
                const char   *message,
                const char   *action_label,
                const char   *action_name)
{
  if (g_strcmp0 (self->error, message) != 0)
    {
      g_free (self->error);
      self->error = g_strdup (message);
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_ERROR]);
    }

  if (message == NULL)
    {
      gtk_revealer_set_reveal_child (self->error_revealer, FALSE);
      gtk_widget_set_visible (GTK_WIDGET (self->error_action_button), FALSE);
      clear_invalid (self);
      return;
    }

  gtk_label_set_text (self->error_label, message);
  gtk_accessible_update_property (GTK_ACCESSIBLE (self->error_box),
                                  GTK_ACCESSIBLE_PROPERTY_LABEL, message, -1);
  gtk_widget_set_visible (GTK_WIDGET (self->error_action_button), action_name != NULL);
  if (action_name != NULL)
    {
      gtk_button_set_label (self->error_action_button, action_label);
      gtk_actionable_set_action_name (GTK_ACTIONABLE (self->error_action_button), action_name);
    }
  gtk_revealer_set_reveal_child (self->error_revealer, TRUE);
}

static void
set_error (FlSignInPage *self,
           const char   *message)
{
  set_error_full (self, message, NULL, NULL);
}

void
fl_sign_in_page_set_notice (FlSignInPage *self,
                            const char   *notice)
{
  g_return_if_fail (FL_IS_SIGN_IN_PAGE (self));

  if (notice != NULL)
    {
      gtk_label_set_text (self->notice_label, notice);
      gtk_accessible_update_property (GTK_ACCESSIBLE (gtk_revealer_get_child (self->notice_revealer)),
                                      GTK_ACCESSIBLE_PROPERTY_LABEL, notice, -1);
    }
  gtk_revealer_set_reveal_child (self->notice_revealer, notice != NULL);
}

void
fl_sign_in_page_suggest_username (FlSignInPage *self,
                                  const char   *username)
{
  g_return_if_fail (FL_IS_SIGN_IN_PAGE (self));

  if (username == NULL || *username == '\0' || *row_text (self->username_row) != '\0')
    return;

  gtk_editable_set_text (GTK_EDITABLE (self->username_row), username);
  fl_sign_in_page_focus_form (self);
}

const char *
fl_sign_in_page_get_error (FlSignInPage *self)
{
  g_return_val_if_fail (FL_IS_SIGN_IN_PAGE (self), NULL);
  return self->error;
}

static void
set_busy (FlSignInPage *self,
          gboolean      busy)
{
  busy = !!busy;
  if (self->busy == busy)
    return;

  self->busy = busy;
  for (guint i = 0; i < G_N_ELEMENTS (request_actions); i++)
    gtk_widget_action_set_enabled (GTK_WIDGET (self), request_actions[i], !busy);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_BUSY]);
}

gboolean
fl_sign_in_page_get_busy (FlSignInPage *self)
{
  g_return_val_if_fail (FL_IS_SIGN_IN_PAGE (self), FALSE);
  return self->busy;
}

/* ---- forms ------------------------------------------------------------- */

static char *
profile_server (FlProfile *profile)
{
  if (fl_profile_get_kind (profile) == FL_PROFILE_LAB)
    return g_strdup (fl_profile_get_url (profile));
  return fl_profile_dup_cognito_endpoint (profile);
}

static void
update_texts (FlSignInPage *self)
{
  const char      *form = gtk_stack_get_visible_child_name (self->form_stack);
  FlProfile       *profile = fl_sign_in_page_get_profile (self);
  g_autofree char *description = NULL;
  const char      *heading = _("Sign In");

  if (form == NULL)
    return;

  if (g_str_equal (form, "sign-in"))
    {
      if (profile == NULL)
        description = g_strdup (_("Add a connection to a Fieldline lab relay or cloud deployment to begin."));
      else if (fl_profile_get_kind (profile) == FL_PROFILE_LAB)
        /* Translators: %s is a URL, e.g. http://127.0.0.1:8080 */
        description = g_strdup_printf (_("Sign in to the lab relay at %s"), fl_profile_get_url (profile));
      else
        /* Translators: %s is the name of a connection */
        description = g_strdup_printf (_("Sign in to %s"), fl_profile_get_name (profile));
    }
  else if (g_str_equal (form, "new-password"))
    {
      heading = _("Choose a New Password");
      description = g_strdup (_("Your account has a temporary password. Choose a new one to continue."));
    }
  else if (g_str_equal (form, "sign-up"))
    {
      heading = _("Create Account");
      description = g_strdup (_("A confirmation code will be emailed to you."));
    }
  else if (g_str_equal (form, "confirm"))
    {
      heading = _("Confirm Your Account");
      if (self->destination != NULL)
        /* Translators: %s is a masked email address, e.g. a***@e*** */
        description = g_strdup_printf (_("Enter the code sent to %s."), self->destination);
      else
        description = g_strdup (_("Enter the confirmation code that was emailed to you."));
    }
  else if (g_str_equal (form, "forgot"))
    {
      heading = _("Reset Password");
      description = g_strdup (_("A code to reset your password will be emailed to you."));
    }
  else if (g_str_equal (form, "reset"))
    {
      heading = _("Reset Password");
      if (self->destination != NULL)
        /* Translators: %s is a masked email address, e.g. a***@e*** */
        description = g_strdup_printf (_("Enter the code sent to %s and choose a new password."), self->destination);
      else
        description = g_strdup (_("Enter the code that was emailed to you and choose a new password."));
    }
  else if (g_str_equal (form, "add-profile"))
    {
      heading = _("Add Connection");
      description = g_strdup (_("Connect to a Fieldline lab relay, or to a cloud deployment."));
    }

  gtk_label_set_text (self->heading, heading);
  gtk_label_set_text (self->description, description != NULL ? description : "");
  gtk_widget_set_visible (GTK_WIDGET (self->description), description != NULL);
}

static gboolean
store_is_empty (FlSignInPage *self)
{
  return self->store == NULL || g_list_model_get_n_items (G_LIST_MODEL (self->store)) == 0;
}

static void
show_form (FlSignInPage *self,
           const char   *form)
{
  gboolean can_go_back;

  set_error (self, NULL);
  gtk_stack_set_visible_child_name (self->form_stack, form);

  can_go_back = !g_str_equal (form, "sign-in") && !(g_str_equal (form, "add-profile") && store_is_empty (self));
  gtk_widget_set_visible (self->back_button, can_go_back);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "sign-in.back", can_go_back);

  update_texts (self);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_FORM]);
  fl_sign_in_page_focus_form (self);
}

const char *
fl_sign_in_page_get_form (FlSignInPage *self)
{
  g_return_val_if_fail (FL_IS_SIGN_IN_PAGE (self), NULL);
  return gtk_stack_get_visible_child_name (self->form_stack);
}

static gboolean
focus_first_empty (AdwEntryRow *first,
                   ...)
{
  va_list      args;
  AdwEntryRow *row = first;
  AdwEntryRow *last = first;

  va_start (args, first);
  while (row != NULL)
    {
      if (gtk_widget_get_visible (GTK_WIDGET (row)) && *row_text (row) == '\0')
        break;
      last = row;
      row = va_arg (args, AdwEntryRow *);
    }
  va_end (args);

  return gtk_widget_grab_focus (GTK_WIDGET (row != NULL ? row : last));
}

void
fl_sign_in_page_focus_form (FlSignInPage *self)
{
  const char *form;

  g_return_if_fail (FL_IS_SIGN_IN_PAGE (self));

  form = gtk_stack_get_visible_child_name (self->form_stack);
  if (form == NULL)
    return;

  if (g_str_equal (form, "sign-in"))
    focus_first_empty (self->username_row, self->password_row, NULL);
  else if (g_str_equal (form, "new-password"))
    focus_first_empty (self->new_password_row, self->new_password_confirm_row, NULL);
  else if (g_str_equal (form, "sign-up"))
    focus_first_empty (self->sign_up_username_row, self->sign_up_email_row, self->sign_up_password_row, NULL);
  else if (g_str_equal (form, "confirm"))
    focus_first_empty (self->confirm_username_row, self->confirm_code_row, NULL);
  else if (g_str_equal (form, "forgot"))
    focus_first_empty (self->forgot_username_row, NULL);
  else if (g_str_equal (form, "reset"))
    focus_first_empty (self->reset_code_row, self->reset_password_row, NULL);
  else if (g_str_equal (form, "add-profile"))
    {
      if (adw_combo_row_get_selected (self->kind_row) == 0)
        focus_first_empty (self->lab_url_row, NULL);
      else
        focus_first_empty (self->cloud_name_row, self->cloud_region_row, self->cloud_pool_row,
                           self->cloud_client_row, self->cloud_api_row, self->cloud_websocket_row, NULL);
    }
}

/* ---- profiles ---------------------------------------------------------- */

FlProfile *
fl_sign_in_page_get_profile (FlSignInPage *self)
{
  g_return_val_if_fail (FL_IS_SIGN_IN_PAGE (self), NULL);
  return adw_combo_row_get_selected_item (self->profile_row);
}

void
fl_sign_in_page_set_profile (FlSignInPage *self,
                             FlProfile    *profile)
{
  guint n;

  g_return_if_fail (FL_IS_SIGN_IN_PAGE (self));
  g_return_if_fail (profile == NULL || FL_IS_PROFILE (profile));

  if (profile == NULL || self->store == NULL)
    return;

  n = g_list_model_get_n_items (G_LIST_MODEL (self->store));
  for (guint i = 0; i < n; i++)
    {
      g_autoptr (FlProfile) item = g_list_model_get_item (G_LIST_MODEL (self->store), i);

      if (g_strcmp0 (fl_profile_get_id (item), fl_profile_get_id (profile)) == 0)
        {
          adw_combo_row_set_selected (self->profile_row, i);
          break;
        }
    }

  if (g_strcmp0 (fl_sign_in_page_get_form (self), "sign-in") != 0)
    show_form (self, "sign-in");
  else
    update_texts (self);
}

static void
selected_profile_cb (FlSignInPage *self)
{
  update_texts (self);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_PROFILE]);
}

static void
store_items_changed_cb (FlSignInPage *self)
{
  const char *form = fl_sign_in_page_get_form (self);

  if (store_is_empty (self))
    {
      if (g_strcmp0 (form, "add-profile") != 0)
        show_form (self, "add-profile");
    }
  else if (g_strcmp0 (form, "add-profile") == 0)
    show_form (self, form); /* back is possible now */
  else
    update_texts (self);
}

FlProfileStore *
fl_sign_in_page_get_store (FlSignInPage *self)
{
  g_return_val_if_fail (FL_IS_SIGN_IN_PAGE (self), NULL);
  return self->store;
}

void
fl_sign_in_page_set_store (FlSignInPage   *self,
                           FlProfileStore *store)
{
  g_return_if_fail (FL_IS_SIGN_IN_PAGE (self));
  g_return_if_fail (store == NULL || FL_IS_PROFILE_STORE (store));

  if (self->store == store)
    return;

  if (self->store != NULL)
    g_signal_handlers_disconnect_by_func (self->store, store_items_changed_cb, self);
  g_set_object (&self->store, store);
  adw_combo_row_set_model (self->profile_row, G_LIST_MODEL (store));
  if (store != NULL)
    g_signal_connect_object (store, "items-changed", G_CALLBACK (store_items_changed_cb), self, G_CONNECT_SWAPPED);

  show_form (self, store_is_empty (self) ? "add-profile" : "sign-in");
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_STORE]);
}

static void
save_store_cb (GObject      *object,
               GAsyncResult *result,
               gpointer      user_data)
{
  g_autoptr (GError) error = NULL;

  if (!fl_profile_store_save_finish (FL_PROFILE_STORE (object), result, &error))
    g_warning ("Could not save the connections: %s", error->message);
}

static void
save_store (FlSignInPage *self)
{
  if (self->store != NULL)
    fl_profile_store_save_async (self->store, NULL, save_store_cb, NULL);
}

/* ---- errors ------------------------------------------------------------ */

/* The inline text of a failure; server is the URL of the server. */
static char *
unreachable_message (const char *server)
{
  /* Translators: %s is a URL */
  return g_strdup_printf (_("Cannot reach the server at %s. Check the address and your network connection."), server);
}

static char *
untrusted_message (const char *server)
{
  /* Translators: %s is a URL */
  return g_strdup_printf (_("The secure connection to %s failed: the server’s certificate is not trusted."), server);
}

static void
show_failure (FlSignInPage *self,
              const GError *error,
              const char   *server,
              AdwEntryRow  *password_row)
{
  g_autofree char *message = NULL;
  const char      *action_label = NULL;
  const char      *action_name = NULL;

  if (error->domain == FL_COGNITO_ERROR)
    {
      switch ((FlCognitoError) error->code)
        {
        case FL_COGNITO_ERROR_NOT_AUTHORIZED:
          message = g_strdup (_("Incorrect username or password."));
          if (password_row != NULL)
            row_set_invalid (password_row, TRUE);
          break;
        case FL_COGNITO_ERROR_USER_NOT_CONFIRMED:
          message = g_strdup (_("This account is not confirmed yet. Enter the confirmation code that was emailed to you."));
          action_label = _("Enter Code");
          action_name = "sign-in.show-confirm";
          break;
        case FL_COGNITO_ERROR_USERNAME_EXISTS:
          message = g_strdup (_("This username is already taken. Choose another one."));
          row_set_invalid (self->sign_up_username_row, TRUE);
          break;
        case FL_COGNITO_ERROR_INVALID_PASSWORD:
          /* Translators: %s is the server's explanation, in English */
          message = g_strdup_printf (_("The password is not strong enough: %s"), error->message);
          if (password_row != NULL)
            row_set_invalid (password_row, TRUE);
          break;
        case FL_COGNITO_ERROR_CODE_MISMATCH:
          message = g_strdup (_("The code is not correct. Check it and try again."));
          break;
        case FL_COGNITO_ERROR_EXPIRED_CODE:
          message = g_strdup (_("The code has expired. Send a new one."));
          break;
        case FL_COGNITO_ERROR_LIMIT_EXCEEDED:
        case FL_COGNITO_ERROR_TOO_MANY_REQUESTS:
          message = g_strdup (_("Too many attempts. Wait a while, then try again."));
          break;
        case FL_COGNITO_ERROR_USER_NOT_FOUND:
          message = g_strdup (_("There is no account with this username."));
          break;
        case FL_COGNITO_ERROR_PASSWORD_RESET_REQUIRED:
          message = g_strdup (_("Your password must be reset before you can sign in."));
          action_label = _("Reset Password");
          action_name = "sign-in.show-forgot-password";
          break;
        case FL_COGNITO_ERROR_NETWORK:
          message = unreachable_message (server);
          break;
        case FL_COGNITO_ERROR_TLS:
          message = untrusted_message (server);
          break;
        case FL_COGNITO_ERROR_RESOURCE_NOT_FOUND:
          message = g_strdup (_("The server does not know this connection’s app client. Check the connection’s settings."));
          break;
        case FL_COGNITO_ERROR_PROTOCOL:
          /* Translators: %s is a URL */
          message = g_strdup_printf (_("The server at %s does not answer as a Fieldline sign-in service."), server);
          break;
        case FL_COGNITO_ERROR_INVALID_PARAMETER:
        case FL_COGNITO_ERROR_OTHER:
        default:
          /* Translators: %s is the server's explanation, in English */
          message = g_strdup_printf (_("The server refused the request: %s"), error->message);
          break;
        }
    }
  else if (g_error_matches (error, FL_CLIENT_ERROR, FL_CLIENT_ERROR_NETWORK))
    message = unreachable_message (server);
  else if (error->domain == G_TLS_ERROR)
    message = untrusted_message (server);
  else if (error->domain == FL_CLIENT_ERROR)
    message = g_strdup_printf (_("The server at %s does not answer as a Fieldline relay."), server);
  else
    /* Translators: %s is an error message */
    message = g_strdup_printf (_("Something went wrong: %s"), error->message);

  set_error_full (self, message, action_label, action_name);
}

/* ---- requests ---------------------------------------------------------- */

typedef enum {
  OP_SIGN_IN,
  OP_NEW_PASSWORD,
  OP_SIGN_UP,
  OP_CONFIRM,
  OP_RESEND,
  OP_FORGOT,
  OP_RESET,
} OpKind;

typedef struct
{
  FlSignInPage    *self;
  OpKind           kind;
  FlProfile       *profile;
  FlClient        *client; /* GET /config of a lab */
  FlCognitoClient *cognito;
  char            *server;
  char            *username;
  char            *password;
  char            *email;
  char            *code;
  FlTokenSet      *tokens;
} Op;

static void
op_free (Op *op)
{
  g_clear_object (&op->self);
  g_clear_object (&op->profile);
  g_clear_object (&op->client);
  g_clear_object (&op->cognito);
  g_free (op->server);
  g_free (op->username);
  wipe_free (op->password);
  g_free (op->email);
  g_free (op->code);
  g_clear_pointer (&op->tokens, fl_token_set_free);
  g_free (op);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Op, op_free)

static void op_run (Op *op);

static gboolean
op_cancelled (const GError *error)
{
  return g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
}

static void
op_fail (Op           *op,
         const GError *error,
         AdwEntryRow  *password_row)
{
  set_busy (op->self, FALSE);
  show_failure (op->self, error, op->server, password_row);
}

/* Keeps where the code went; the request is over */
static void
op_take_destination (Op   *op,
                     char *destination)
{
  g_free (op->self->destination);
  op->self->destination = destination;
  set_busy (op->self, FALSE);
}

/* -- signed in -- */

static void
store_tokens_cb (GObject      *object,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  g_autoptr (Op)        op = user_data;
  FlSignInPage         *self = op->self;
  g_autoptr (GError)    error = NULL;
  g_autoptr (FlSession) session = NULL;

  if (!fl_token_store_store_finish (result, &error))
    {
      if (op_cancelled (error))
        return;
      /* still signed in, but the next start will ask again */
      g_debug ("Could not keep the tokens in the keyring: %s", error->message);
    }

  session = fl_session_new (op->profile, op->tokens, TRUE);

  row_clear (self->password_row);
  row_clear (self->new_password_row);
  row_clear (self->new_password_confirm_row);
  row_clear (self->reset_password_row);
  row_clear (self->reset_code_row);
  row_clear (self->confirm_code_row);
  g_clear_pointer (&self->pending_password, wipe_free);
  g_clear_pointer (&self->challenge, fl_cognito_challenge_free);
  set_busy (self, FALSE);
  set_error (self, NULL);
  fl_sign_in_page_set_notice (self, NULL);
  show_form (self, "sign-in");

  g_signal_emit (self, signals[SIGNED_IN], 0, session);
}

static void
op_signed_in (Op                    *op,
              const FlCognitoTokens *tokens)
{
  op->tokens = fl_token_set_new (tokens->id_token, tokens->access_token, tokens->refresh_token,
                                 tokens->expires_at, tokens->username != NULL ? tokens->username : op->username);
  fl_token_store_store_async (fl_profile_get_id (op->profile), fl_profile_get_name (op->profile), op->tokens,
                              op->self->cancellable, store_tokens_cb, op);
}

/* -- sign in and the new password -- */

static void
sign_in_cb (GObject      *object,
            GAsyncResult *result,
            gpointer      user_data)
{
  g_autoptr (Op)                 op = user_data;
  FlSignInPage                  *self = op->self;
  g_autoptr (GError)             error = NULL;
  g_autoptr (FlCognitoTokens)    tokens = NULL;
  g_autoptr (FlCognitoChallenge) challenge = NULL;

  tokens = fl_cognito_client_sign_in_finish (FL_COGNITO_CLIENT (object), result, &challenge, &error);
  if (op_cancelled (error))
    return;

  if (tokens != NULL)
    {
      op_signed_in (op, tokens);
      g_steal_pointer (&op);
      return;
    }

  if (challenge != NULL)
    {
      g_clear_pointer (&self->challenge, fl_cognito_challenge_free);
      self->challenge = g_steal_pointer (&challenge);
      set_busy (self, FALSE);
      row_clear (self->new_password_row);
      row_clear (self->new_password_confirm_row);
      show_form (self, "new-password");
      return;
    }

  if (g_error_matches (error, FL_COGNITO_ERROR, FL_COGNITO_ERROR_USER_NOT_CONFIRMED))
    {
      gtk_editable_set_text (GTK_EDITABLE (self->confirm_username_row), op->username);
      g_clear_pointer (&self->pending_password, wipe_free);
      self->pending_password = g_strdup (op->password);
    }
  else if (g_error_matches (error, FL_COGNITO_ERROR, FL_COGNITO_ERROR_PASSWORD_RESET_REQUIRED))
    gtk_editable_set_text (GTK_EDITABLE (self->forgot_username_row), op->username);

  op_fail (op, error, self->password_row);
}

static void
new_password_cb (GObject      *object,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  g_autoptr (Op)              op = user_data;
  g_autoptr (GError)          error = NULL;
  g_autoptr (FlCognitoTokens) tokens = NULL;

  tokens = fl_cognito_client_respond_new_password_finish (FL_COGNITO_CLIENT (object), result, &error);
  if (op_cancelled (error))
    return;

  if (tokens == NULL)
    {
      /* the challenge's session may have expired: start over */
      if (g_error_matches (error, FL_COGNITO_ERROR, FL_COGNITO_ERROR_NOT_AUTHORIZED))
        {
          g_clear_pointer (&op->self->challenge, fl_cognito_challenge_free);
          show_form (op->self, "sign-in");
        }
      op_fail (op, error, op->self->new_password_row);
      return;
    }

  op_signed_in (op, tokens);
  g_steal_pointer (&op);
}

/* -- registration -- */

static void
sign_up_cb (GObject      *object,
            GAsyncResult *result,
            gpointer      user_data)
{
  g_autoptr (Op)     op = user_data;
  FlSignInPage      *self = op->self;
  g_autoptr (GError) error = NULL;
  g_autofree char   *destination = NULL;
  gboolean           confirmed = FALSE;

  if (!fl_cognito_client_sign_up_finish (FL_COGNITO_CLIENT (object), result, &confirmed, &destination, &error))
    {
      if (!op_cancelled (error))
        op_fail (op, error, self->sign_up_password_row);
      return;
    }

  gtk_editable_set_text (GTK_EDITABLE (self->username_row), op->username);
  gtk_editable_set_text (GTK_EDITABLE (self->confirm_username_row), op->username);
  row_clear (self->sign_up_password_row);

  if (confirmed)
    {
      /* no code needed: sign in at once */
      op->kind = OP_SIGN_IN;
      op_run (g_steal_pointer (&op));
      return;
    }

  g_clear_pointer (&self->pending_password, wipe_free);
  self->pending_password = g_strdup (op->password);
  op_take_destination (op, g_steal_pointer (&destination));
  row_clear (self->confirm_code_row);
  show_form (self, "confirm");
}

static void
confirm_cb (GObject      *object,
            GAsyncResult *result,
            gpointer      user_data)
{
  g_autoptr (Op)     op = user_data;
  FlSignInPage      *self = op->self;
  g_autoptr (GError) error = NULL;

  if (!fl_cognito_client_confirm_sign_up_finish (FL_COGNITO_CLIENT (object), result, &error))
    {
      if (!op_cancelled (error))
        {
          op_fail (op, error, NULL);
          row_set_invalid (self->confirm_code_row, TRUE);
        }
      return;
    }

  gtk_editable_set_text (GTK_EDITABLE (self->username_row), op->username);
  if (self->pending_password != NULL)
    {
      /* the password of the sign-up: sign in at once */
      op->kind = OP_SIGN_IN;
      op->password = g_strdup (self->pending_password);
      g_clear_pointer (&self->pending_password, wipe_free);
      op_run (g_steal_pointer (&op));
      return;
    }

  set_busy (self, FALSE);
  show_form (self, "sign-in");
  fl_sign_in_page_set_notice (self, _("Your account is confirmed. Sign in with your password."));
}

static void
resend_cb (GObject      *object,
           GAsyncResult *result,
           gpointer      user_data)
{
  g_autoptr (Op)     op = user_data;
  FlSignInPage      *self = op->self;
  g_autoptr (GError) error = NULL;
  g_autofree char   *destination = NULL;

  destination = fl_cognito_client_resend_code_finish (FL_COGNITO_CLIENT (object), result, &error);
  if (error != NULL)
    {
      if (!op_cancelled (error))
        op_fail (op, error, NULL);
      return;
    }

  op_take_destination (op, g_steal_pointer (&destination));
  set_error (self, NULL);
  update_texts (self);
  fl_sign_in_page_set_notice (self, _("A new code was sent."));
}

/* -- forgotten password -- */

static void
forgot_cb (GObject      *object,
           GAsyncResult *result,
           gpointer      user_data)
{
  g_autoptr (Op)     op = user_data;
  FlSignInPage      *self = op->self;
  g_autoptr (GError) error = NULL;
  g_autofree char   *destination = NULL;

  destination = fl_cognito_client_forgot_password_finish (FL_COGNITO_CLIENT (object), result, &error);
  if (error != NULL)
    {
      if (!op_cancelled (error))
        op_fail (op, error, NULL);
      return;
    }

  op_take_destination (op, g_steal_pointer (&destination));
  row_clear (self->reset_code_row);
  row_clear (self->reset_password_row);
  show_form (self, "reset");
}

static void
reset_cb (GObject      *object,
          GAsyncResult *result,
          gpointer      user_data)
{
  g_autoptr (Op)     op = user_data;
  FlSignInPage      *self = op->self;
  g_autoptr (GError) error = NULL;

  if (!fl_cognito_client_confirm_forgot_password_finish (FL_COGNITO_CLIENT (object), result, &error))
    {
      if (!op_cancelled (error))
        op_fail (op, error, self->reset_password_row);
      return;
    }

  /* sign in with the new password */
  gtk_editable_set_text (GTK_EDITABLE (self->username_row), op->username);
  op->kind = OP_SIGN_IN;
  op_run (g_steal_pointer (&op));
}

/* -- the Cognito call of an operation, once the profile is complete -- */

static void
op_call (Op *op)
{
  GCancellable *cancellable = op->self->cancellable;

  if (op->cognito == NULL)
    {
      g_autofree char *endpoint = fl_profile_dup_cognito_endpoint (op->profile);

      op->cognito = fl_cognito_client_new (endpoint, fl_profile_get_user_pool_id (op->profile),
                                           fl_profile_get_client_id (op->profile), NULL);
    }

  switch (op->kind)
    {
    case OP_SIGN_IN:
      fl_cognito_client_sign_in_async (op->cognito, op->username, op->password, cancellable, sign_in_cb, op);
      break;
    case OP_NEW_PASSWORD:
      fl_cognito_client_respond_new_password_async (op->cognito, op->self->challenge, op->password,
                                                    cancellable, new_password_cb, op);
      break;
    case OP_SIGN_UP:
      fl_cognito_client_sign_up_async (op->cognito, op->username, op->password, op->email,
                                       cancellable, sign_up_cb, op);
      break;
    case OP_CONFIRM:
      fl_cognito_client_confirm_sign_up_async (op->cognito, op->username, op->code, cancellable, confirm_cb, op);
      break;
    case OP_RESEND:
      fl_cognito_client_resend_code_async (op->cognito, op->username, cancellable, resend_cb, op);
      break;
    case OP_FORGOT:
      fl_cognito_client_forgot_password_async (op->cognito, op->username, cancellable, forgot_cb, op);
      break;
    case OP_RESET:
      fl_cognito_client_confirm_forgot_password_async (op->cognito, op->username, op->code, op->password,
                                                       cancellable, reset_cb, op);
      break;
    default:
      g_assert_not_reached ();
    }
}

/* -- a lab's GET /config -- */

static void
tls_probe_cb (GObject      *object,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr (Op)                op = user_data;
  g_autoptr (GError)            error = NULL;
  g_autoptr (GSocketConnection) connection = NULL;

  connection = g_socket_client_connect_to_uri_finish (G_SOCKET_CLIENT (object), result, &error);
  if (op_cancelled (error))
    return;

  if (error != NULL && error->domain == G_TLS_ERROR)
    {
      op_fail (op, error, NULL);
      return;
    }

  if (connection != NULL)
    g_io_stream_close_async (G_IO_STREAM (connection), G_PRIORITY_DEFAULT, NULL, NULL, NULL);

  {
    g_autoptr (GError) network = g_error_new_literal (FL_CLIENT_ERROR, FL_CLIENT_ERROR_NETWORK, "unreachable");
    op_fail (op, network, NULL);
  }
}

static void
config_cb (GObject      *object,
           GAsyncResult *result,
           gpointer      user_data)
{
  g_autoptr (Op)             op = user_data;
  g_autoptr (GError)         error = NULL;
  g_autoptr (FlClientConfig) config = NULL;

  config = fl_client_get_config_finish (FL_CLIENT (object), result, &error);
  if (op_cancelled (error))
    return;

  if (config == NULL)
    {
      if (g_error_matches (error, FL_CLIENT_ERROR, FL_CLIENT_ERROR_NETWORK)
          && g_str_has_prefix (op->server, "https:"))
        {
          /* FlClient folds TLS failures into NETWORK: tell them apart
           * with a handshake of our own, so the message can say which */
          g_autoptr (GSocketClient) client = g_socket_client_new ();
          Op                       *probe = g_steal_pointer (&op);

          g_socket_client_set_tls (client, TRUE);
          g_socket_client_connect_to_uri_async (client, probe->server, 443, probe->self->cancellable,
                                                tls_probe_cb, probe);
          return;
        }
      op_fail (op, error, NULL);
      return;
    }

  if (config->user_pool_id == NULL || config->client_id == NULL)
    {
      g_autoptr (GError) protocol = g_error_new_literal (FL_CLIENT_ERROR, FL_CLIENT_ERROR_PROTOCOL, "no pool");
      op_fail (op, protocol, NULL);
      return;
    }

  g_object_set (op->profile,
                "user-pool-id", config->user_pool_id,
                "client-id", config->client_id,
                "region", config->region,
                "api-url", config->api_url,
                "websocket-url", config->websocket_url,
                NULL);
  save_store (op->self);

  op_call (g_steal_pointer (&op));
}

static void
op_run (Op *op)
{
  if (fl_profile_get_kind (op->profile) == FL_PROFILE_LAB && op->client == NULL)
    {
      /* A lab's pool and app client come from its GET /config, read
       * again each time: a relay started afresh has new ones. */
      op->client = fl_client_new (fl_profile_get_url (op->profile));
      fl_client_get_config_async (op->client, op->self->cancellable, config_cb, op);
      return;
    }

  if (!fl_profile_is_complete (op->profile))
    {
      set_busy (op->self, FALSE);
      set_error (op->self, _("This connection is missing settings. Add it again."));
      op_free (op);
      return;
    }

  op_call (op);
}

static Op *
op_new (FlSignInPage *self,
        OpKind        kind)
{
  FlProfile *profile = fl_sign_in_page_get_profile (self);
  Op        *op;

  if (profile == NULL)
    {
      set_error (self, _("Add a connection first."));
      return NULL;
    }

  op = g_new0 (Op, 1);
  op->self = g_object_ref (self);
  op->kind = kind;
  op->profile = g_object_ref (profile);
  op->server = profile_server (profile);

  return op;
}

static void
op_start (FlSignInPage *self,
          Op           *op)
{
  set_error (self, NULL);
  set_busy (self, TRUE);
  op_run (op);
}

/* ---- actions ----------------------------------------------------------- */

static gboolean
require_rows_valist (FlSignInPage *self,
                     const char   *message,
                     AdwEntryRow  *first,
                     va_list       args)
{
  AdwEntryRow *row;
  AdwEntryRow *empty = NULL;

  for (row = first; row != NULL; row = va_arg (args, AdwEntryRow *))
    {
      g_autofree char *text = row_dup_stripped (row);

      if (*text == '\0')
        {
          row_set_invalid (row, TRUE);
          if (empty == NULL)
            empty = row;
        }
    }

  if (empty == NULL)
    return TRUE;

  set_error (self, message);
  /* set_error cleared the marks: mark the first empty one again */
  row_set_invalid (empty, TRUE);
  gtk_widget_grab_focus (GTK_WIDGET (empty));
  return FALSE;
}

static gboolean
require_rows (FlSignInPage *self,
              const char   *message,
              AdwEntryRow  *first,
              ...)
{
  va_list  args;
  gboolean filled;

  va_start (args, first);
  filled = require_rows_valist (self, message, first, args);
  va_end (args);
  return filled;
}

/* A new operation of kind, or NULL when one runs, a row is empty (the
 * rows end with NULL) or there is no profile */
static Op *
op_prepare (FlSignInPage *self,
            OpKind        kind,
            const char   *message,
            AdwEntryRow  *first,
            ...)
{
  va_list  args;
  gboolean filled;

  if (self->busy)
    return NULL;
  va_start (args, first);
  filled = require_rows_valist (self, message, first, args);
  va_end (args);
  if (!filled)
    return NULL;
  return op_new (self, kind);
}

static void
sign_in_action (GtkWidget  *widget,
                const char *action_name,
                GVariant   *parameter)
{
  FlSignInPage *self = FL_SIGN_IN_PAGE (widget);
  Op           *op;

  op = op_prepare (self, OP_SIGN_IN, _("Enter your username and password."),
                   self->username_row, self->password_row, NULL);
  if (op == NULL)
    return;

  op->username = row_dup_stripped (self->username_row);
  op->password = g_strdup (row_text (self->password_row));
  op_start (self, op);
}

static void
new_password_action (GtkWidget  *widget,
                     const char *action_name,
                     GVariant   *parameter)
{
  FlSignInPage *self = FL_SIGN_IN_PAGE (widget);
  Op           *op;

  if (self->busy)
    return;
  if (self->challenge == NULL)
    {
      show_form (self, "sign-in");
      return;
    }
  if (!require_rows (self, _("Enter the new password twice."), self->new_password_row, self->new_password_confirm_row, NULL))
    return;
  if (g_strcmp0 (row_text (self->new_password_row), row_text (self->new_password_confirm_row)) != 0)
    {
      set_error (self, _("The two passwords are not the same."));
      row_set_invalid (self->new_password_confirm_row, TRUE);
      gtk_widget_grab_focus (GTK_WIDGET (self->new_password_confirm_row));
      return;
    }
  if ((op = op_new (self, OP_NEW_PASSWORD)) == NULL)
    return;

  op->username = g_strdup (self->challenge->username);
  op->password = g_strdup (row_text (self->new_password_row));
  op_start (self, op);
}

static void
show_sign_up_action (GtkWidget  *widget,
                     const char *action_name,
                     GVariant   *parameter)
{
  FlSignInPage *self = FL_SIGN_IN_PAGE (widget);

  if (*row_text (self->sign_up_username_row) == '\0')
    gtk_editable_set_text (GTK_EDITABLE (self->sign_up_username_row), row_text (self->username_row));
  show_form (self, "sign-up");
}

static void
sign_up_action (GtkWidget  *widget,
                const char *action_name,
                GVariant   *parameter)
{
  FlSignInPage *self = FL_SIGN_IN_PAGE (widget);
  Op           *op;

  op = op_prepare (self, OP_SIGN_UP, _("Enter a username, your email address and a password."),
                   self->sign_up_username_row, self->sign_up_email_row, self->sign_up_password_row, NULL);
  if (op == NULL)
    return;

  op->username = row_dup_stripped (self->sign_up_username_row);
  op->email = row_dup_stripped (self->sign_up_email_row);
  op->password = g_strdup (row_text (self->sign_up_password_row));
  op_start (self, op);
}

static void
show_confirm_action (GtkWidget  *widget,
                     const char *action_name,
                     GVariant   *parameter)
{
  FlSignInPage *self = FL_SIGN_IN_PAGE (widget);
  const char   *username = row_text (self->sign_up_username_row);

  if (*row_text (self->confirm_username_row) == '\0')
    {
      if (*username == '\0')
        username = row_text (self->username_row);
      gtk_editable_set_text (GTK_EDITABLE (self->confirm_username_row), username);
    }
  show_form (self, "confirm");
}

static void
confirm_action (GtkWidget  *widget,
                const char *action_name,
                GVariant   *parameter)
{
  FlSignInPage *self = FL_SIGN_IN_PAGE (widget);
  Op           *op;

  op = op_prepare (self, OP_CONFIRM, _("Enter your username and the confirmation code."),
                   self->confirm_username_row, self->confirm_code_row, NULL);
  if (op == NULL)
    return;

  op->username = row_dup_stripped (self->confirm_username_row);
  op->code = row_dup_stripped (self->confirm_code_row);
  op_start (self, op);
}

static void
resend_code_action (GtkWidget  *widget,
                    const char *action_name,
                    GVariant   *parameter)
{
  FlSignInPage *self = FL_SIGN_IN_PAGE (widget);
  Op           *op;

  op = op_prepare (self, OP_RESEND, _("Enter your username."),
                   self->confirm_username_row, NULL);
  if (op == NULL)
    return;

  op->username = row_dup_stripped (self->confirm_username_row);
  op_start (self, op);
}

static void
show_forgot_password_action (GtkWidget  *widget,
                             const char *action_name,
                             GVariant   *parameter)
{
  FlSignInPage *self = FL_SIGN_IN_PAGE (widget);

  if (*row_text (self->forgot_username_row) == '\0')
    gtk_editable_set_text (GTK_EDITABLE (self->forgot_username_row), row_text (self->username_row));
  show_form (self, "forgot");
}

static void
forgot_password_action (GtkWidget  *widget,
                        const char *action_name,
                        GVariant   *parameter)
{
  FlSignInPage *self = FL_SIGN_IN_PAGE (widget);
  Op           *op;

  op = op_prepare (self, OP_FORGOT, _("Enter your username."),
                   self->forgot_username_row, NULL);
  if (op == NULL)
    return;

  op->username = row_dup_stripped (self->forgot_username_row);
  op_start (self, op);
}

static void
reset_password_action (GtkWidget  *widget,
                       const char *action_name,
                       GVariant   *parameter)
{
  FlSignInPage *self = FL_SIGN_IN_PAGE (widget);
  Op           *op;

  if (self->busy)
    return;
  if (!require_rows (self, _("Enter the code and a new password."), self->reset_code_row, self->reset_password_row, NULL))
    return;
  if (!require_rows (self, _("Enter your username."), self->forgot_username_row, NULL))
    {
      show_form (self, "forgot");
      return;
    }
  if ((op = op_new (self, OP_RESET)) == NULL)
    return;

  op->username = row_dup_stripped (self->forgot_username_row);
  op->code = row_dup_stripped (self->reset_code_row);
  op->password = g_strdup (row_text (self->reset_password_row));
  op_start (self, op);
}

static void
add_profile_action (GtkWidget  *widget,
                    const char *action_name,
                    GVariant   *parameter)
{
  show_form (FL_SIGN_IN_PAGE (widget), "add-profile");
}

static gboolean
is_http_url (const char *text)
{
  g_autofree char *normal = fl_profile_normalize_url (text);

  return normal != NULL && (g_str_has_prefix (text, "http://") || g_str_has_prefix (text, "https://"));
}

static gboolean
is_ws_url (const char *text)
{
  g_autoptr (GUri) uri = g_uri_parse (text, G_URI_FLAGS_NONE, NULL);

  return uri != NULL && (g_str_equal (g_uri_get_scheme (uri), "wss") || g_str_equal (g_uri_get_scheme (uri), "ws"))
         && g_uri_get_host (uri) != NULL && *g_uri_get_host (uri) != '\0';
}

static void
save_profile_action (GtkWidget  *widget,
                     const char *action_name,
                     GVariant   *parameter)
{
  FlSignInPage         *self = FL_SIGN_IN_PAGE (widget);
  g_autoptr (FlProfile) profile = NULL;

  if (self->busy || self->store == NULL)
    return;

  if (adw_combo_row_get_selected (self->kind_row) == 0)
    {
      g_autofree char *url = row_dup_stripped (self->lab_url_row);
      FlProfile       *existing;

      if (!require_rows (self, _("Enter the relay’s address, e.g. http://127.0.0.1:8080."), self->lab_url_row, NULL))
        return;
      profile = fl_profile_new_lab (url);
      if (profile == NULL)
        {
          set_error (self, _("This is not a relay address. Enter one like http://127.0.0.1:8080."));
          row_set_invalid (self->lab_url_row, TRUE);
          gtk_widget_grab_focus (GTK_WIDGET (self->lab_url_row));
          return;
        }
      existing = fl_profile_store_find_lab (self->store, url);
      if (existing != NULL)
        g_set_object (&profile, existing);
      else
        fl_profile_store_add (self->store, profile);
    }
  else
    {
      g_autofree char *name = row_dup_stripped (self->cloud_name_row);
      g_autofree char *region = row_dup_stripped (self->cloud_region_row);
      g_autofree char *pool = row_dup_stripped (self->cloud_pool_row);
      g_autofree char *client = row_dup_stripped (self->cloud_client_row);
      g_autofree char *api = row_dup_stripped (self->cloud_api_row);
      g_autofree char *ws = row_dup_stripped (self->cloud_websocket_row);

      if (!require_rows (self, _("Fill in every setting of the cloud deployment."),
                         self->cloud_name_row, self->cloud_region_row, self->cloud_pool_row,
                         self->cloud_client_row, self->cloud_api_row, self->cloud_websocket_row, NULL))
        return;
      if (strchr (pool, '_') == NULL || !g_str_has_prefix (pool, region))
        {
          /* Translators: %s is an AWS region, e.g. eu-west-1 */
          g_autofree char *message = g_strdup_printf (_("A user pool ID looks like %s_AbC123xyz."), region);
          set_error (self, message);
          row_set_invalid (self->cloud_pool_row, TRUE);
          return;
        }
      if (!is_http_url (api))
        {
          set_error (self, _("The REST API URL must start with https:// or http://."));
          row_set_invalid (self->cloud_api_row, TRUE);
          return;
        }
      if (!is_ws_url (ws))
        {
          set_error (self, _("The WebSocket URL must start with wss:// or ws://."));
          row_set_invalid (self->cloud_websocket_row, TRUE);
          return;
        }
      profile = fl_profile_new_cloud (name, region, pool, client, api, ws);
      fl_profile_store_add (self->store, profile);
    }

  save_store (self);
  fl_sign_in_page_set_profile (self, profile);
  show_form (self, "sign-in");
}

static void
back_action (GtkWidget  *widget,
             const char *action_name,
             GVariant   *parameter)
{
  FlSignInPage *self = FL_SIGN_IN_PAGE (widget);
  const char   *form = fl_sign_in_page_get_form (self);

  if (self->busy)
    {
      /* stop the request; the next one gets a fresh cancellable */
      g_cancellable_cancel (self->cancellable);
      g_object_unref (self->cancellable);
      self->cancellable = g_cancellable_new ();
      set_busy (self, FALSE);
    }

  if (g_strcmp0 (form, "reset") == 0)
    show_form (self, "forgot");
  else if (g_strcmp0 (form, "confirm") == 0 && self->pending_password != NULL)
    show_form (self, "sign-up");
  else if (g_strcmp0 (form, "add-profile") != 0 || !store_is_empty (self))
    show_form (self, "sign-in");
}

/* ---- template callbacks ----------------------------------------------- */

static void
form_changed_cb (FlSignInPage *self)
{
  row_set_invalid (self->username_row, FALSE);
  row_set_invalid (self->password_row, FALSE);
}

/* Enter in a field: on to the next field, or, from a form's last one,
 * the form's action (see set_up_enter_keys()). */
static void
entry_activated_cb (AdwEntryRow  *row,
                    FlSignInPage *self)
{
  GtkWidget  *next = g_object_get_data (G_OBJECT (row), "fl-next-row");
  const char *action = g_object_get_data (G_OBJECT (row), "fl-action");

  if (next != NULL)
    gtk_widget_grab_focus (next);
  else
    gtk_widget_activate_action (GTK_WIDGET (self), action, NULL);
}

static void
set_up_enter_keys (FlSignInPage *self)
{
  const struct
  {
    AdwEntryRow *row;
    AdwEntryRow *next;
    const char  *action;
  } keys[] = {
    { self->username_row, self->password_row, NULL },
    { self->password_row, NULL, "sign-in.sign-in" },
    { self->new_password_row, self->new_password_confirm_row, NULL },
    { self->new_password_confirm_row, NULL, "sign-in.new-password" },
    { self->sign_up_username_row, self->sign_up_email_row, NULL },
    { self->sign_up_email_row, self->sign_up_password_row, NULL },
    { self->sign_up_password_row, NULL, "sign-in.sign-up" },
    { self->confirm_username_row, self->confirm_code_row, NULL },
    { self->confirm_code_row, NULL, "sign-in.confirm" },
    { self->forgot_username_row, NULL, "sign-in.forgot-password" },
    { self->reset_code_row, self->reset_password_row, NULL },
    { self->reset_password_row, NULL, "sign-in.reset-password" },
    { self->lab_url_row, NULL, "sign-in.save-profile" },
    { self->cloud_websocket_row, NULL, "sign-in.save-profile" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (keys); i++)
    {
      g_object_set_data (G_OBJECT (keys[i].row), "fl-next-row", keys[i].next);
      g_object_set_data (G_OBJECT (keys[i].row), "fl-action", (gpointer) keys[i].action);
      g_signal_connect_object (keys[i].row, "entry-activated", G_CALLBACK (entry_activated_cb), self, 0);
    }
}

static void
kind_changed_cb (FlSignInPage *self)
{
  gboolean lab = adw_combo_row_get_selected (self->kind_row) == 0;

  gtk_widget_set_visible (self->lab_group, lab);
  gtk_widget_set_visible (self->cloud_group, !lab);
}

/* ---- GObject ----------------------------------------------------------- */

static void
fl_sign_in_page_dispose (GObject *object)
{
  FlSignInPage *self = FL_SIGN_IN_PAGE (object);

  g_cancellable_cancel (self->cancellable);
  if (self->store != NULL)
    g_signal_handlers_disconnect_by_func (self->store, store_items_changed_cb, self);
  g_clear_object (&self->store);

  gtk_widget_dispose_template (GTK_WIDGET (self), FL_TYPE_SIGN_IN_PAGE);

  G_OBJECT_CLASS (fl_sign_in_page_parent_class)->dispose (object);
}

static void
fl_sign_in_page_finalize (GObject *object)
{
  FlSignInPage *self = FL_SIGN_IN_PAGE (object);

  g_clear_object (&self->cancellable);
  g_clear_pointer (&self->challenge, fl_cognito_challenge_free);
  g_clear_pointer (&self->pending_password, wipe_free);
  g_clear_pointer (&self->error, g_free);
  g_clear_pointer (&self->destination, g_free);

  G_OBJECT_CLASS (fl_sign_in_page_parent_class)->finalize (object);
}

static void
fl_sign_in_page_get_property (GObject    *object,
                              guint       prop_id,
                              GValue     *value,
                              GParamSpec *pspec)
{
  FlSignInPage *self = FL_SIGN_IN_PAGE (object);

  switch (prop_id)
    {
    case PROP_STORE:
      g_value_set_object (value, self->store);
      break;
    case PROP_PROFILE:
      g_value_set_object (value, fl_sign_in_page_get_profile (self));
      break;
    case PROP_BUSY:
      g_value_set_boolean (value, self->busy);
      break;
    case PROP_ERROR:
      g_value_set_string (value, self->error);
      break;
    case PROP_FORM:
      g_value_set_string (value, fl_sign_in_page_get_form (self));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
fl_sign_in_page_set_property (GObject      *object,
                              guint         prop_id,
                              const GValue *value,
                              GParamSpec   *pspec)
{
  FlSignInPage *self = FL_SIGN_IN_PAGE (object);

  switch (prop_id)
    {
    case PROP_STORE:
      fl_sign_in_page_set_store (self, g_value_get_object (value));
      break;
    case PROP_PROFILE:
      fl_sign_in_page_set_profile (self, g_value_get_object (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
fl_sign_in_page_class_init (FlSignInPageClass *klass)
{
  GObjectClass   *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = fl_sign_in_page_dispose;
  object_class->finalize = fl_sign_in_page_finalize;
  object_class->get_property = fl_sign_in_page_get_property;
  object_class->set_property = fl_sign_in_page_set_property;

  properties[PROP_STORE] = g_param_spec_object ("store", NULL, NULL, FL_TYPE_PROFILE_STORE,
                                                G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  properties[PROP_PROFILE] = g_param_spec_object ("profile", NULL, NULL, FL_TYPE_PROFILE,
                                                  G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  properties[PROP_BUSY] = g_param_spec_boolean ("busy", NULL, NULL, FALSE,
                                                G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  properties[PROP_ERROR] = g_param_spec_string ("error", NULL, NULL, NULL,
                                                G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  properties[PROP_FORM] = g_param_spec_string ("form", NULL, NULL, NULL,
                                               G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * FlSignInPage::signed-in:
   * @session: the new session
   */
  signals[SIGNED_IN] = g_signal_new ("signed-in", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                                     0, NULL, NULL, NULL, G_TYPE_NONE, 1, FL_TYPE_SESSION);

  g_type_ensure (FL_TYPE_PROFILE);

  gtk_widget_class_set_template_from_resource (widget_class, "/io/github/fieldline/Fieldline/fl-sign-in-page.ui");
  gtk_widget_class_bind_template_child (widget_class, FlSignInPage, back_button);
  gtk_widget_class_bind_template_child (widget_class, FlSignInPage, spinner);
  gtk_widget_class_bind_template_child (widget_class, FlSignInPage, heading);
  gtk_widget_class_bind_template_child (widget_class, FlSignInPage, description);
  gtk_widget_class_bind_template_child (widget_class, FlSignInPage, notice_revealer);
  gtk_widget_class_bind_template_child (widget_class, FlSignInPage, notice_label);
  gtk_widget_class_bind_template_child (widget_class, FlSignInPage, error_revealer);
  gtk_widget_class_bind_template_child (widget_class, FlSignInPage, error_box);
  gtk_widget_class_bind_template_child (widget_class, FlSignInPage, error_label);
  gtk_widget_class_bind_template_child (widget_class, FlSignInPage, error_action_button);
  gtk_widget_class_bind_template_child (widget_class, FlSignInPage, form_stack);
  gtk_widget_class_bind_template_child (widget_class, FlSignInPage, profile_row);
  gtk_widget_class_bind_template_child (widget_class, FlSignInPage, username_row);
  gtk_widget_class_bind_template_child (widget_class, FlSignInPage, password_row);
  gtk_widget_class_bind_template_child (widget_class, FlSignInPage, sign_in_button);
  gtk_widget_class_bind_template_child (widget_class, FlSignInPage, new_password_row);
  gtk_widget_class_bind_template_child (widget_class, FlSignInPage, new_password_confirm_row);
  gtk_widget_class_bind_template_child (widget_class, FlSignInPage, sign_up_username_row);
  gtk_widget_class_bind_template_child (widget_class, FlSignInPage, sign_up_email_row);
  gtk_widget_class_bind_template_child (widget_class, FlSignInPage, sign_up_password_row);
  gtk_widget_class_bind_template_child (widget_class, FlSignInPage, confirm_username_row);
  gtk_widget_class_bind_template_child (widget_class, FlSignInPage, confirm_code_row);
  gtk_widget_class_bind_template_child (widget_class, FlSignInPage, forgot_username_row);
  gtk_widget_class_bind_template_child (widget_class, FlSignInPage, reset_code_row);
  gtk_widget_class_bind_template_child (widget_class, FlSignInPage, reset_password_row);
  gtk_widget_class_bind_template_child (widget_class, FlSignInPage, kind_row);
  gtk_widget_class_bind_template_child (widget_class, FlSignInPage, lab_group);
  gtk_widget_class_bind_template_child (widget_class, FlSignInPage, cloud_group);
  gtk_widget_class_bind_template_child (widget_class, FlSignInPage, lab_url_row);
  gtk_widget_class_bind_template_child (widget_class, FlSignInPage, cloud_name_row);
  gtk_widget_class_bind_template_child (widget_class, FlSignInPage, cloud_region_row);
  gtk_widget_class_bind_template_child (widget_class, FlSignInPage, cloud_pool_row);
  gtk_widget_class_bind_template_child (widget_class, FlSignInPage, cloud_client_row);
  gtk_widget_class_bind_template_child (widget_class, FlSignInPage, cloud_api_row);
  gtk_widget_class_bind_template_child (widget_class, FlSignInPage, cloud_websocket_row);

  gtk_widget_class_bind_template_callback (widget_class, form_changed_cb);
  gtk_widget_class_bind_template_callback (widget_class, kind_changed_cb);

  gtk_widget_class_install_action (widget_class, "sign-in.sign-in", NULL, sign_in_action);
  gtk_widget_class_install_action (widget_class, "sign-in.new-password", NULL, new_password_action);
  gtk_widget_class_install_action (widget_class, "sign-in.show-sign-up", NULL, show_sign_up_action);
  gtk_widget_class_install_action (widget_class, "sign-in.sign-up", NULL, sign_up_action);
  gtk_widget_class_install_action (widget_class, "sign-in.show-confirm", NULL, show_confirm_action);
  gtk_widget_class_install_action (widget_class, "sign-in.confirm", NULL, confirm_action);
  gtk_widget_class_install_action (widget_class, "sign-in.resend-code", NULL, resend_code_action);
  gtk_widget_class_install_action (widget_class, "sign-in.show-forgot-password", NULL, show_forgot_password_action);
  gtk_widget_class_install_action (widget_class, "sign-in.forgot-password", NULL, forgot_password_action);
  gtk_widget_class_install_action (widget_class, "sign-in.reset-password", NULL, reset_password_action);
  gtk_widget_class_install_action (widget_class, "sign-in.add-profile", NULL, add_profile_action);
  gtk_widget_class_install_action (widget_class, "sign-in.save-profile", NULL, save_profile_action);
  gtk_widget_class_install_action (widget_class, "sign-in.back", NULL, back_action);

  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_Escape, 0, "sign-in.back", NULL);
}

static void
fl_sign_in_page_init (FlSignInPage *self)
{
  self->cancellable = g_cancellable_new ();

  gtk_widget_init_template (GTK_WIDGET (self));
  set_up_enter_keys (self);

  {
    AdwEntryRow *password_rows[] = {
      self->password_row, self->new_password_row, self->new_password_confirm_row,
      self->sign_up_password_row, self->reset_password_row,
    };

    for (guint i = 0; i < G_N_ELEMENTS (password_rows); i++)
      /* Translators: the accessible name of the eye button of a password field */
      fl_a11y_name_inner_buttons (GTK_WIDGET (password_rows[i]), _("Show Password"));
  }

  g_signal_connect_object (self->profile_row, "notify::selected-item", G_CALLBACK (selected_profile_cb),
                           self, G_CONNECT_SWAPPED);
  show_form (self, "add-profile");
}

/**
 * fl_sign_in_page_new:
 * @store: (nullable): the profiles
 *
 * Returns: (transfer floating): a sign-in page
 */
FlSignInPage *
fl_sign_in_page_new (FlProfileStore *store)
{
  return g_object_new (FL_TYPE_SIGN_IN_PAGE, "store", store, NULL);
}
