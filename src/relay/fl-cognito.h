/* fl-cognito.h: the Cognito Identity Provider protocol (POST / with
 * X-Amz-Target) and the relay's /auth wrappers over it. */
#pragma once

#include <libsoup/soup.h>

#include "fl-relay.h"

G_BEGIN_DECLS

void _fl_relay_handle_cognito  (FlRelay           *self,
                                SoupServerMessage *msg);
void _fl_relay_handle_register (FlRelay           *self,
                                SoupServerMessage *msg);
void _fl_relay_handle_confirm  (FlRelay           *self,
                                SoupServerMessage *msg);

G_END_DECLS
