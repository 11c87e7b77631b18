/* fl-profile.c: a connection profile of the console. */
#define G_LOG_DOMAIN "fl-profile"

#include "config.h"

#include <string.h>

#include <gio/gio.h>

#include "fl-profile.h"

struct _FlProfile
{
  GObject       parent_instance;

  char         *id;
  char         *name;
  FlProfileKind kind;
  char         *url;
  char         *region;
  char         *user_pool_id;
  char         *client_id;
  char         *api_url;
  char         *websocket_url;
  char         *derived_websocket_url; /* a lab's, before /config */
};

G_DEFINE_TYPE (FlProfile, fl_profile, G_TYPE_OBJECT)

G_DEFINE_ENUM_TYPE (FlProfileKind, fl_profile_kind,
                    G_DEFINE_ENUM_VALUE (FL_PROFILE_LAB, "lab"),
                    G_DEFINE_ENUM_VALUE (FL_PROFILE_CLOUD, "cloud"))

enum {
  PROP_0,
  PROP_ID,
  PROP_NAME,
  PROP_KIND,
  PROP_URL,
  PROP_REGION,
  PROP_USER_POOL_ID,
  PROP_CLIENT_ID,
  PROP_API_URL,
  PROP_WEBSOCKET_URL,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static gboolean
replace_string (char      **field,
                const char *value)
{
  if (g_strcmp0 (*field, value) == 0)
    return FALSE;
  g_free (*field);
  *field = (value != NULL && *value != '\0') ? g_strdup (value) : NULL;
  return TRUE;
}

static void
fl_profile_finalize (GObject *object)
{
  FlProfile *self = FL_PROFILE (object);

  g_clear_pointer (&self->id, g_free);
  g_clear_pointer (&self->name, g_free);
  g_clear_pointer (&self->url, g_free);
  g_clear_pointer (&self->region, g_free);
  g_clear_pointer (&self->user_pool_id, g_free);
  g_clear_pointer (&self->client_id, g_free);
  g_clear_pointer (&self->api_url, g_free);
  g_clear_pointer (&self->websocket_url, g_free);
  g_clear_pointer (&self->derived_websocket_url, g_free);

  G_OBJECT_CLASS (fl_profile_parent_class)->finalize (object);
}

static void
fl_profile_get_property (GObject    *object,
                         guint       prop_id,
                         GValue     *value,
                         GParamSpec *pspec)
{
  FlProfile *self = FL_PROFILE (object);

  switch (prop_id)
    {
    case PROP_ID:
      g_value_set_string (value, self->id);
      break;
    case PROP_NAME:
      g_value_set_string (value, fl_profile_get_name (self));
      break;
    case PROP_KIND:
      g_value_set_enum (value, self->kind);
      break;
    case PROP_URL:
      g_value_set_string (value, self->url);
      break;
    case PROP_REGION:
      g_value_set_string (value, self->region);
      break;
    case PROP_USER_POOL_ID:
      g_value_set_string (value, self->user_pool_id);
      break;
    case PROP_CLIENT_ID:
      g_value_set_string (value, self->client_id);
      break;
    case PROP_API_URL:
      g_value_set_string (value, fl_profile_get_api_url (self));
      break;
    case PROP_WEBSOCKET_URL:
      g_value_set_string (value, fl_profile_get_websocket_url (self));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
fl_profile_set_property (GObject      *object,
                         guint         prop_id,
                         const GValue *value,
                         GParamSpec   *pspec)
{
  FlProfile *self = FL_PROFILE (object);
  char     **field = NULL;

  switch (prop_id)
    {
    case PROP_ID:
      field = &self->id;
      break;
    case PROP_NAME:
      field = &self->name;
      break;
    case PROP_KIND:
      if (self->kind != (FlProfileKind) g_value_get_enum (value))
        {
          self->kind = g_value_get_enum (value);
          g_object_notify_by_pspec (object, pspec);
        }
      return;
    case PROP_URL:
      field = &self->url;
      g_clear_pointer (&self->derived_websocket_url, g_free);
      break;
    case PROP_REGION:
      field = &self->region;
      break;
    case PROP_USER_POOL_ID:
      field = &self->user_pool_id;
      break;
    case PROP_CLIENT_ID:
      field = &self->client_id;
      break;
    case PROP_API_URL:
      field = &self->api_url;
      break;
    case PROP_WEBSOCKET_URL:
      field = &self->websocket_url;
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      return;
    }

  if (replace_string (field, g_value_get_string (value)))
    g_object_notify_by_pspec (object, pspec);
}

static void
fl_profile_class_init (FlProfileClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GParamFlags   flags = G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS;

  object_class->finalize = fl_profile_finalize;
  object_class->get_property = fl_profile_get_property;
  object_class->set_property = fl_profile_set_property;

  properties[PROP_ID] = g_param_spec_string ("id", NULL, NULL, NULL,
                                             G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  properties[PROP_NAME] = g_param_spec_string ("name", NULL, NULL, NULL, flags);
  properties[PROP_KIND] = g_param_spec_enum ("kind", NULL, NULL, FL_TYPE_PROFILE_KIND, FL_PROFILE_LAB,
                                             G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  properties[PROP_URL] = g_param_spec_string ("url", NULL, NULL, NULL, flags);
  properties[PROP_REGION] = g_param_spec_string ("region", NULL, NULL, NULL, flags);
  properties[PROP_USER_POOL_ID] = g_param_spec_string ("user-pool-id", NULL, NULL, NULL, flags);
  properties[PROP_CLIENT_ID] = g_param_spec_string ("client-id", NULL, NULL, NULL, flags);
  properties[PROP_API_URL] = g_param_spec_string ("api-url", NULL, NULL, NULL, flags);
  properties[PROP_WEBSOCKET_URL] = g_param_spec_string ("websocket-url", NULL, NULL, NULL, flags);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
fl_profile_init (FlProfile *self)
{
}

char *
fl_profile_normalize_url (const char *url)
{
  g_autofree char *text = NULL;
  g_autoptr (GUri) uri = NULL;
  const char      *scheme;
  gsize            len;

  if (url == NULL)
    return NULL;

  text = g_strstrip (g_strdup (url));
  if (*text == '\0')
    return NULL;
  if (strstr (text, "://") == NULL)
    {
      char *with_scheme = g_strconcat ("http://", text, NULL);
      g_free (text);
      text = with_scheme;
    }

  uri = g_uri_parse (text, G_URI_FLAGS_NONE, NULL);
  if (uri == NULL)
    return NULL;
  scheme = g_uri_get_scheme (uri);
  if (g_ascii_strcasecmp (scheme, "http") != 0 && g_ascii_strcasecmp (scheme, "https") != 0)
    return NULL;
  if (g_uri_get_host (uri) == NULL || *g_uri_get_host (uri) == '\0')
    return NULL;
  if (g_uri_get_query (uri) != NULL || g_uri_get_fragment (uri) != NULL || g_uri_get_userinfo (uri) != NULL)
    return NULL;

  g_free (text);
  text = g_uri_to_string (uri);
  len = strlen (text);
  while (len > 0 && text[len - 1] == '/')
    text[--len] = '\0';

  return g_steal_pointer (&text);
}

static char *
lab_id_for_url (const char *url)
{
  g_autoptr (GUri) uri = g_uri_parse (url, G_URI_FLAGS_NONE, NULL);
  GString         *id = g_string_new ("lab-");
  const char      *host;
  int              port;

  g_assert (uri != NULL);
  host = g_uri_get_host (uri);
  port = g_uri_get_port (uri);
  if (g_ascii_strcasecmp (g_uri_get_scheme (uri), "https") == 0)
    g_string_append (id, "https-");
  for (const char *p = host; *p != '\0'; p++)
    g_string_append_c (id, g_ascii_isalnum (*p) || *p == '.' ? g_ascii_tolower (*p) : '_');
  if (port > 0)
    g_string_append_printf (id, "-%d", port);
  if (g_uri_get_path (uri) != NULL && *g_uri_get_path (uri) != '\0')
    {
      g_autofree char *hash = g_compute_checksum_for_string (G_CHECKSUM_SHA256, g_uri_get_path (uri), -1);
      g_string_append_printf (id, "-%.8s", hash);
    }

  return g_string_free (id, FALSE);
}

/**
 * fl_profile_new_lab:
 * @url: the relay's base URL
 *
 * Returns: (transfer full) (nullable): a lab profile, or %NULL when @url
 *   is not an http(s) URL
 */
FlProfile *
fl_profile_new_lab (const char *url)
{
  g_autofree char *normal = fl_profile_normalize_url (url);
  g_autofree char *id = NULL;
  g_autoptr (GUri) uri = NULL;
  g_autofree char *name = NULL;

  if (normal == NULL)
    return NULL;

  id = lab_id_for_url (normal);
  uri = g_uri_parse (normal, G_URI_FLAGS_NONE, NULL);
  if (g_uri_get_port (uri) > 0)
    name = g_strdup_printf ("%s:%d", g_uri_get_host (uri), g_uri_get_port (uri));
  else
    name = g_strdup (g_uri_get_host (uri));

  return g_object_new (FL_TYPE_PROFILE,
                       "id", id,
                       "kind", FL_PROFILE_LAB,
                       "name", name,
                       "url", normal,
                       NULL);
}

/**
 * fl_profile_new_cloud:
 *
 * Returns: (transfer full): a cloud profile with a new random id
 */
FlProfile *
fl_profile_new_cloud (const char *name,
                      const char *region,
                      const char *user_pool_id,
                      const char *client_id,
                      const char *api_url,
                      const char *websocket_url)
{
  g_autofree char *uuid = g_uuid_string_random ();
  g_autofree char *id = g_strconcat ("cloud-", uuid, NULL);

  return g_object_new (FL_TYPE_PROFILE,
                       "id", id,
                       "kind", FL_PROFILE_CLOUD,
                       "name", name,
                       "region", region,
                       "user-pool-id", user_pool_id,
                       "client-id", client_id,
                       "api-url", api_url,
                       "websocket-url", websocket_url,
                       NULL);
}

const char *
fl_profile_get_id (FlProfile *self)
{
  g_return_val_if_fail (FL_IS_PROFILE (self), NULL);
  return self->id;
}

const char *
fl_profile_get_name (FlProfile *self)
{
  g_return_val_if_fail (FL_IS_PROFILE (self), NULL);
  if (self->name != NULL)
    return self->name;
  if (self->url != NULL)
    return self->url;
  return self->id;
}

void
fl_profile_set_name (FlProfile  *self,
                     const char *name)
{
  g_return_if_fail (FL_IS_PROFILE (self));
  g_object_set (self, "name", name, NULL);
}

FlProfileKind
fl_profile_get_kind (FlProfile *self)
{
  g_return_val_if_fail (FL_IS_PROFILE (self), FL_PROFILE_LAB);
  return self->kind;
}

const char *
fl_profile_get_url (FlProfile *self)
{
  g_return_val_if_fail (FL_IS_PROFILE (self), NULL);
  return self->url;
}

const char *
fl_profile_get_region (FlProfile *self)
{
  g_return_val_if_fail (FL_IS_PROFILE (self), NULL);
  return self->region;
}

const char *
fl_profile_get_user_pool_id (FlProfile *self)
{
  g_return_val_if_fail (FL_IS_PROFILE (self), NULL);
  return self->user_pool_id;
}

const char *
fl_profile_get_client_id (FlProfile *self)
{
  g_return_val_if_fail (FL_IS_PROFILE (self), NULL);
  return self->client_id;
}

const char *
fl_profile_get_api_url (FlProfile *self)
{
  g_return_val_if_fail (FL_IS_PROFILE (self), NULL);
  if (self->api_url != NULL)
    return self->api_url;
  /* a lab's REST API is the relay itself */
  return self->kind == FL_PROFILE_LAB ? self->url : NULL;
}

const char *
fl_profile_get_websocket_url (FlProfile *self)
{
  g_return_val_if_fail (FL_IS_PROFILE (self), NULL);

  if (self->websocket_url != NULL)
    return self->websocket_url;

  if (self->kind == FL_PROFILE_LAB && self->url != NULL)
    {
      /* before /config was read: ws(s)://HOST:PORT/events */
      if (self->derived_websocket_url != NULL)
        return self->derived_websocket_url;
      if (g_str_has_prefix (self->url, "https://"))
        self->derived_websocket_url = g_strconcat ("wss://", self->url + strlen ("https://"), "/events", NULL);
      else if (g_str_has_prefix (self->url, "http://"))
        self->derived_websocket_url = g_strconcat ("ws://", self->url + strlen ("http://"), "/events", NULL);
      return self->derived_websocket_url;
    }

  return NULL;
}

char *
fl_profile_dup_cognito_endpoint (FlProfile *self)
{
  g_return_val_if_fail (FL_IS_PROFILE (self), NULL);

  if (self->kind == FL_PROFILE_LAB)
    return g_strconcat (self->url != NULL ? self->url : "", "/", NULL);

  return g_strdup_printf ("https://cognito-idp.%s.amazonaws.com/", self->region != NULL ? self->region : "");
}

gboolean
fl_profile_is_complete (FlProfile *self)
{
  g_return_val_if_fail (FL_IS_PROFILE (self), FALSE);

  if (self->user_pool_id == NULL || self->client_id == NULL)
    return FALSE;
  if (self->kind == FL_PROFILE_CLOUD)
    return self->region != NULL && self->api_url != NULL && self->websocket_url != NULL;
  return self->url != NULL;
}
