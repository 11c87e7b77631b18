/* fl-console-private.h: what the console's files and tests share beyond
 * the public headers. */
#pragma once

#include "fl-application.h"

G_BEGIN_DECLS

/* The command-line handler of FlApplication (GApplication::command-line),
 * callable on a GApplicationCommandLine made by a test. */
int   _fl_application_command_line (FlApplication           *self,
                                    GApplicationCommandLine *cmdline);

G_END_DECLS
