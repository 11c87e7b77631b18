/* bench-auth.c: what the user pool costs: bearer-token validation (cached
 * and cold), USER_PASSWORD sign-in with the real argon2id parameters, and
 * refresh.  Prints figures; passes unless something fails outright. */
#define G_LOG_DOMAIN "bench-auth"

#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib/gstdio.h>

#include "fl-user-pool-private.h"
#include "fl-user-pool.h"

#define PASSWORD "Bench-Passw0rd!"

typedef struct
{
  GMainLoop *loop;
  FlTokens  *tokens;
  guint      pending;
} Wait;

static void
login_cb (GObject      *source,
          GAsyncResult *result,
          gpointer      user_data)
{
  Wait              *w = user_data;
  g_autoptr (GError) error = NULL;
  FlTokens          *tokens = fl_user_pool_login_finish (FL_USER_POOL (source), result, &error);

  if (tokens == NULL)
    g_error ("sign-in failed: %s", error->message);
  if (w->tokens == NULL)
    w->tokens = tokens;
  else
    fl_tokens_free (tokens);
  if (--w->pending == 0)
    g_main_loop_quit (w->loop);
}

static void
refresh_cb (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  Wait              *w = user_data;
  g_autoptr (GError) error = NULL;
  FlTokens          *tokens = fl_user_pool_refresh_finish (FL_USER_POOL (source), result, &error);

  if (tokens == NULL)
    g_error ("refresh failed: %s", error->message);
  fl_tokens_free (tokens);
  if (--w->pending == 0)
    g_main_loop_quit (w->loop);
}

static FlTokens *
login (FlUserPool *pool,
       guint       concurrent)
{
  Wait w = { g_main_loop_new (NULL, FALSE), NULL, concurrent };

  for (guint i = 0; i < concurrent; i++)
    fl_user_pool_login_async (pool, "bench", PASSWORD, "127.0.0.1", NULL, login_cb, &w);
  g_main_loop_run (w.loop);
  g_main_loop_unref (w.loop);

  return w.tokens;
}

static void
refresh (FlUserPool *pool,
         const char *token)
{
  Wait w = { g_main_loop_new (NULL, FALSE), NULL, 1 };

  fl_user_pool_refresh_async (pool, token, NULL, refresh_cb, &w);
  g_main_loop_run (w.loop);
  g_main_loop_unref (w.loop);
}

static int
compare_doubles (const void *a,
                 const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;

  return x < y ? -1 : x > y;
}

static void
report (const char *what,
        double     *samples,
        guint       n,
        const char *unit)
{
  double sum = 0;

  qsort (samples, n, sizeof (double), compare_doubles);
  for (guint i = 0; i < n; i++)
    sum += samples[i];

  printf ("%-44s n=%-7u mean %9.2f  median %9.2f  p95 %9.2f  max %9.2f %s\n",
          what, n, sum / n, samples[n / 2], samples[(guint) (n * 0.95)], samples[n - 1], unit);
}

static void
rm_rf (const char *path)
{
  GDir       *dir = g_dir_open (path, 0, NULL);
  const char *name;

  if (dir == NULL)
    {
      g_unlink (path);
      return;
    }
  while ((name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *child = g_build_filename (path, name, NULL);

      rm_rf (child);
    }
  g_dir_close (dir);
  g_rmdir (path);
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr (GError)     error = NULL;
  g_autofree char       *dir = g_dir_make_tmp ("bench-auth-XXXXXX", &error);
  g_autoptr (FlUserPool) pool = NULL;
  g_autofree char       *issuer = NULL;
  FlTokens              *tokens;
  gint64                 start;
  double                *samples;
  const guint            n_login = 30;
  const guint            n_refresh = 300;
  const guint            n_cold = 3000;
  const guint            n_cached = 1000000;
  const guint            n_concurrent = 16;

  g_assert_no_error (error);

  start = g_get_monotonic_time ();
  pool = fl_user_pool_open (dir, &error);
  g_assert_no_error (error);
  printf ("open (first run: schema, 2 RSA-2048 keys)    %.1f ms\n", (g_get_monotonic_time () - start) / 1000.0);
  g_clear_object (&pool);

  start = g_get_monotonic_time ();
  pool = fl_user_pool_open (dir, &error);
  g_assert_no_error (error);
  printf ("open (again)                                 %.1f ms\n", (g_get_monotonic_time () - start) / 1000.0);

  issuer = g_strdup_printf ("http://127.0.0.1:8080/%s", fl_user_pool_get_pool_id (pool));
  fl_user_pool_set_issuer (pool, issuer);

  start = g_get_monotonic_time ();
  if (!fl_user_pool_add_user (pool, "bench", "bench@example.com", PASSWORD, FL_ROLE_OPERATOR, &error))
    g_error ("add user: %s", error->message);
  printf ("add user (argon2id t=2 m=19MiB p=1, sync)    %.1f ms\n\n", (g_get_monotonic_time () - start) / 1000.0);

  /* warm up: makes the dummy hash too */
  fl_tokens_free (login (pool, 1));

  samples = g_new (double, MAX (MAX (n_login, n_refresh), n_cold));

  for (guint i = 0; i < n_login; i++)
    {
      start = g_get_monotonic_time ();
      fl_tokens_free (login (pool, 1));
      samples[i] = (g_get_monotonic_time () - start) / 1000.0;
    }
  report ("USER_PASSWORD sign-in (one at a time)", samples, n_login, "ms");

  start = g_get_monotonic_time ();
  fl_tokens_free (login (pool, n_concurrent));
  {
    double total = (g_get_monotonic_time () - start) / 1000.0;

    printf ("%-44s %u at once: %.1f ms in all, %.1f sign-ins/s (%u CPUs)\n",
            "USER_PASSWORD sign-in (concurrent)", n_concurrent, total,
            n_concurrent / (total / 1000.0), g_get_num_processors ());
  }

  tokens = login (pool, 1);

  for (guint i = 0; i < n_refresh; i++)
    {
      start = g_get_monotonic_time ();
      refresh (pool, tokens->refresh_token);
      samples[i] = (g_get_monotonic_time () - start) / 1000.0;
    }
  report ("REFRESH_TOKEN (2 RSA signatures + SQLite)", samples, n_refresh, "ms");

  for (guint i = 0; i < n_cold; i++)
    {
      const char  *token = i % 2 ? tokens->id_token : tokens->access_token;
      FlPrincipal *principal;

      _fl_user_pool_clear_token_cache (pool);
      start = g_get_monotonic_time ();
      principal = fl_user_pool_authenticate (pool, token, &error);
      samples[i] = (double) (g_get_monotonic_time () - start);
      g_assert_no_error (error);
      fl_principal_free (principal);
    }
  report ("authenticate, cold (RSA verify + claims)", samples, n_cold, "µs");

  {
    FlPrincipal *principal = fl_user_pool_authenticate (pool, tokens->id_token, &error);
    double       per_op;

    g_assert_no_error (error);
    fl_principal_free (principal);

    start = g_get_monotonic_time ();
    for (guint i = 0; i < n_cached; i++)
      {
        principal = fl_user_pool_authenticate (pool, tokens->id_token, NULL);
        g_assert (principal != NULL);
        fl_principal_free (principal);
      }
    per_op = (double) (g_get_monotonic_time () - start) / n_cached;
    printf ("%-44s n=%-7u mean %9.2f µs (incl. SHA-256 of a %zu-byte token, copy and free)\n",
            "authenticate, cached", n_cached, per_op, strlen (tokens->id_token));
    printf ("\ntarget: cached validation <= 20 µs: %s\n", per_op <= 20.0 ? "met" : "NOT MET");
  }

  fl_tokens_free (tokens);
  g_free (samples);
  g_clear_object (&pool);
  rm_rf (dir);

  return 0;
}
