/* main.c: the fieldline console. */
#define G_LOG_DOMAIN "fieldline"

#include "config.h"

#include <locale.h>

#include <glib/gi18n.h>

#include "fl-application.h"

int
main (int   argc,
      char *argv[])
{
  g_autoptr (FlApplication) app = NULL;

  setlocale (LC_ALL, "");
  bindtextdomain (GETTEXT_PACKAGE, LOCALEDIR);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  textdomain (GETTEXT_PACKAGE);

  g_set_application_name (_("Fieldline"));

  app = fl_application_new ();
  return g_application_run (G_APPLICATION (app), argc, argv);
}
