/* fl-a11y.c: accessibility repairs the console's toolkit versions need. */
#define G_LOG_DOMAIN "fl-a11y"

#include "config.h"

#include "fl-a11y.h"

/**
 * fl_a11y_name_inner_buttons:
 * @composite: a widget made of others (a GtkDropDown, an
 *   AdwPasswordEntryRow)
 * @name: the accessible name its buttons get
 *
 * Some composite widgets keep a focusable button of their own without an
 * accessible name (GTK 4.8: the button of a GtkDropDown; libadwaita 1.2:
 * the show-text toggle of an AdwPasswordEntryRow), so that a screen
 * reader landing on it says only "button".  This names every button
 * inside @composite.
 */
void
fl_a11y_name_inner_buttons (GtkWidget  *composite,
                            const char *name)
{
  g_return_if_fail (GTK_IS_WIDGET (composite));
  g_return_if_fail (name != NULL);

  for (GtkWidget *child = gtk_widget_get_first_child (composite); child != NULL;
       child = gtk_widget_get_next_sibling (child))
    {
      if (GTK_IS_BUTTON (child))
        gtk_accessible_update_property (GTK_ACCESSIBLE (child), GTK_ACCESSIBLE_PROPERTY_LABEL, name, -1);
      fl_a11y_name_inner_buttons (child, name);
    }
}
