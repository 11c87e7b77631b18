/* fl-profile.h: a connection profile of the console.
 *
 * A lab profile is a relay's base URL; everything else comes from the
 * relay's GET /config.  A cloud profile names the Cognito region, user
 * pool and app client and the REST and WebSocket URLs of a deployment.
 * Both kinds sign in through the same Cognito code path: see
 * fl_profile_dup_cognito_endpoint().  A profile holds no secrets.
 */
#pragma once

#include <glib-object.h>

G_BEGIN_DECLS

typedef enum {
  FL_PROFILE_LAB,
  FL_PROFILE_CLOUD,
} FlProfileKind;

#define FL_TYPE_PROFILE_KIND (fl_profile_kind_get_type ())
GType fl_profile_kind_get_type (void);

#define FL_TYPE_PROFILE (fl_profile_get_type ())
G_DECLARE_FINAL_TYPE (FlProfile, fl_profile, FL, PROFILE, GObject)

/* A lab profile for the relay at url; its id is derived from the URL
 * ("lab-127.0.0.1-8080"), so the same relay gets the same profile. */
FlProfile    *fl_profile_new_lab                (const char *url);
FlProfile    *fl_profile_new_cloud              (const char *name,
                                                 const char *region,
                                                 const char *user_pool_id,
                                                 const char *client_id,
                                                 const char *api_url,
                                                 const char *websocket_url);

const char   *fl_profile_get_id                 (FlProfile *self);
const char   *fl_profile_get_name               (FlProfile *self);
void          fl_profile_set_name               (FlProfile  *self,
                                                 const char *name);
FlProfileKind fl_profile_get_kind               (FlProfile *self);
/* Lab: the relay's base URL ("http://127.0.0.1:8080"); cloud: NULL. */
const char   *fl_profile_get_url                (FlProfile *self);
const char   *fl_profile_get_region             (FlProfile *self);
const char   *fl_profile_get_user_pool_id       (FlProfile *self);
const char   *fl_profile_get_client_id          (FlProfile *self);
/* The REST API's root.  Lab: the URL, or /config's apiUrl once known. */
const char   *fl_profile_get_api_url            (FlProfile *self);
/* The /events WebSocket (ws(s)://.../events). */
const char   *fl_profile_get_websocket_url      (FlProfile *self);

/* Lab: url + "/"; cloud: "https://cognito-idp.REGION.amazonaws.com/".
 * Transfer full. */
char         *fl_profile_dup_cognito_endpoint   (FlProfile *self);

/* A lab profile is complete once its relay's GET /config was read. */
gboolean      fl_profile_is_complete            (FlProfile *self);

/* Canonical form of a relay URL typed by a user ("127.0.0.1:8080" ->
 * "http://127.0.0.1:8080", no trailing slash), or NULL when it is not
 * an http(s) URL.  Transfer full. */
char         *fl_profile_normalize_url          (const char *url);

G_END_DECLS
