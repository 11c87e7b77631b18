/* fl-a11y.h: accessibility repairs the console's toolkit versions need. */
#pragma once

#include <gtk/gtk.h>

G_BEGIN_DECLS

void fl_a11y_name_inner_buttons (GtkWidget  *composite,
                                 const char *name);

G_END_DECLS
