/* fl-loadgen.c: the relay load generator.
 *
 * Spawns fieldline-relay on 127.0.0.1 port 0 with a fresh data directory,
 * registers devices, then drives it through five phases (http-batch,
 * ws-ingest, http-single, latency, rss) and prints one line per figure and
 * a summary against the targets.  The relay shares the two cores with us,
 * so the load is made cheaply: one thread, non-blocking sockets on one
 * epoll set, requests formatted straight into per-connection buffers, and
 * RFC 6455 framing by hand (fl-loadgen-proto.c).
 *
 * Exit status: 0 when the relay behaved (every event accepted exactly once,
 * counts matching GET /metrics, clean exit on SIGTERM), whether or not the
 * speed targets were met; 1 when it misbehaved; 2 on usage errors.
 */
#define G_LOG_DOMAIN "fl-loadgen"

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/utsname.h>
#include <sys/wait.h>

#include <glib.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "fl-loadgen-proto.h"

#define BENCH_USER "bench"
#define BENCH_EMAIL "bench@example.com"
#define BENCH_PASSWORD "Bench-pass-1!"

#define NS_PER_S G_GUINT64_CONSTANT (1000000000)
#define NS_PER_MS G_GUINT64_CONSTANT (1000000)
#define MAX_DEPTH 16 /* in-flight requests per connection */
#define MAX_WS_PAYLOAD (16u << 20)
#define STALL_NS (30 * NS_PER_S)
#define CLOSE_WAIT_NS (10 * NS_PER_S)
#define MAX_ERRORS_SHOWN 20
#define MAX_ERRORS 200
#define DUP_TAG G_MAXUINT32

/* ---- small helpers ------------------------------------------------------ */

static gboolean
token_matches (const char *p,
               gsize       len,
               const char *s)
{
  return strlen (s) == len && memcmp (p, s, len) == 0;
}

static inline guint64
now_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (guint64) ts.tv_sec * NS_PER_S + (guint64) ts.tv_nsec;
}

static double
ns_to_ms (guint64 ns)
{
  return (double) ns / 1e6;
}

static double
ns_to_s (guint64 ns)
{
  return (double) ns / 1e9;
}

static char *
read_text_file (const char *path)
{
  char *contents = NULL;

  if (!g_file_get_contents (path, &contents, NULL, NULL))
    return NULL;
  return contents;
}

/* ---- the relay process ---------------------------------------------------- */

typedef struct
{
  char    *exe;
  char    *data_dir;
  pid_t    pid;
  gboolean reaped;
  int      wait_status;
  gboolean verbose;

  /* filled by the stdout drain thread */
  GThread *drain;
  int      stdout_fd;
  GMutex   lock;
  GCond    cond;
  int      port;
  gboolean eof;
  char    *pool_id;
  char    *client_id;
} Relay;

static char **
relay_environment (gboolean keep_debug_env)
{
  GPtrArray *env = g_ptr_array_new ();

  for (char **e = environ; *e != NULL; e++)
    {
      /* The test environment turns on allocator debugging; a benchmark of
       * the relay runs it as it would run in production. */
      if (!keep_debug_env && (g_str_has_prefix (*e, "G_SLICE=") || g_str_has_prefix (*e, "G_DEBUG=") || g_str_has_prefix (*e, "MALLOC_CHECK_=") || g_str_has_prefix (*e, "MALLOC_PERTURB_=")))
        continue;
      g_ptr_array_add (env, g_strdup (*e));
    }
  g_ptr_array_add (env, NULL);
  return (char **) g_ptr_array_free (env, FALSE);
}

/* fork + exec rather than GSubprocess: the child dies with us (a killed
 * benchmark must not leave a relay behind) and we reap it ourselves. */
static pid_t
spawn_child (char   **argv,
             char   **envp,
             int      stdin_fd,
             int      stdout_fd,
             GError **error)
{
  pid_t parent = getpid ();
  pid_t pid = fork ();

  if (pid < 0)
    {
      int saved = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
                   "fork: %s", g_strerror (saved));
      return -1;
    }
  if (pid == 0)
    {
      sigset_t none;

      prctl (PR_SET_PDEATHSIG, SIGKILL);
      if (getppid () != parent)
        _exit (127);
      sigemptyset (&none);
      sigprocmask (SIG_SETMASK, &none, NULL);
      signal (SIGPIPE, SIG_DFL);
      if (stdin_fd >= 0)
        dup2 (stdin_fd, STDIN_FILENO);
      if (stdout_fd >= 0)
        dup2 (stdout_fd, STDOUT_FILENO);
      execve (argv[0], argv, envp);
      _exit (127);
    }
  return pid;
}

/* Waits up to timeout_ns; FALSE if the child is still running */
static gboolean
wait_child (pid_t   pid,
            guint64 timeout_ns,
            int    *status)
{
  guint64 deadline = now_ns () + timeout_ns;

  for (;;)
    {
      pid_t r = waitpid (pid, status, WNOHANG);

      if (r == pid)
        return TRUE;
      if (r < 0 && errno != EINTR)
        {
          *status = -1;
          return TRUE;
        }
      if (now_ns () >= deadline)
        return FALSE;
      g_usleep (5000);
    }
}

static char *
describe_status (int status)
{
  if (status == -1)
    return g_strdup ("lost (waitpid failed)");
  if (WIFEXITED (status))
    return g_strdup_printf ("exit status %d", WEXITSTATUS (status));
  if (WIFSIGNALED (status))
    return g_strdup_printf ("killed by signal %d (%s)", WTERMSIG (status),
                            g_strsignal (WTERMSIG (status)));
  return g_strdup_printf ("status 0x%x", status);
}

static gboolean
relay_add_user (Relay   *relay,
                char   **envp,
                GError **error)
{
  char *argv[] = {
    relay->exe, (char *) "users", (char *) "add", (char *) BENCH_USER,
    (char *) "--email", (char *) BENCH_EMAIL, (char *) "--group", (char *) "admin",
    (char *) "--data-dir", relay->data_dir, NULL
  };
  int               fds[2];
  pid_t             pid;
  int               status = 0;
  static const char password[] = BENCH_PASSWORD "\n";

  if (pipe2 (fds, O_CLOEXEC) < 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "pipe: %s", g_strerror (errno));
      return FALSE;
    }
  /* its chatter goes to stderr, away from the figures */
  pid = spawn_child (argv, envp, fds[0], STDERR_FILENO, error);
  close (fds[0]);
  if (pid < 0)
    {
      close (fds[1]);
      return FALSE;
    }
  if (write (fds[1], password, sizeof password - 1) != (ssize_t) sizeof password - 1)
    g_printerr ("loadgen: could not write the password to `users add`: %s\n", g_strerror (errno));
  close (fds[1]);

  if (!wait_child (pid, 60 * NS_PER_S, &status))
    {
      kill (pid, SIGKILL);
      wait_child (pid, 5 * NS_PER_S, &status);
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                           "`fieldline-relay users add` did not finish within 60 s");
      return FALSE;
    }
  if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
    {
      g_autofree char *what = describe_status (status);
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                   "`fieldline-relay users add " BENCH_USER "` failed: %s", what);
      return FALSE;
    }
  return TRUE;
}

static gpointer
relay_drain_thread (gpointer data)
{
  Relay  *relay = data;
  FILE   *f = fdopen (relay->stdout_fd, "r");
  char   *line = NULL;
  size_t  cap = 0;
  ssize_t n;
  guint   shown = 0;

  while ((n = getline (&line, &cap, f)) > 0)
    {
      const char *p;

      while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';

      g_mutex_lock (&relay->lock);
      if ((p = strstr (line, "listening on http://127.0.0.1:")) != NULL && relay->port == 0)
        {
          relay->port = atoi (p + strlen ("listening on http://127.0.0.1:"));
          g_cond_broadcast (&relay->cond);
        }
      else if ((p = strstr (line, "user pool: ")) != NULL && relay->pool_id == NULL)
        relay->pool_id = g_strdup (p + strlen ("user pool: "));
      else if ((p = strstr (line, "app client: ")) != NULL && relay->client_id == NULL)
        relay->client_id = g_strdup (p + strlen ("app client: "));
      g_mutex_unlock (&relay->lock);

      if (relay->verbose || shown < 20)
        g_printerr ("relay| %s\n", line);
      else if (shown == 20)
        g_printerr ("relay| (more output not shown; --verbose shows it)\n");
      shown++;
    }

  free (line);
  fclose (f);
  g_mutex_lock (&relay->lock);
  relay->eof = TRUE;
  g_cond_broadcast (&relay->cond);
  g_mutex_unlock (&relay->lock);
  return NULL;
}

static gboolean
relay_start (Relay   *relay,
             char   **envp,
             GError **error)
{
  char *argv[] = {
    relay->exe, (char *) "--listen", (char *) "127.0.0.1:0",
    (char *) "--data-dir", relay->data_dir, NULL
  };
  int    fds[2];
  gint64 deadline;

  /* a restart: the previous drain thread ended with the old process */
  if (relay->drain != NULL)
    g_thread_join (g_steal_pointer (&relay->drain));
  relay->port = 0;
  relay->eof = FALSE;
  relay->reaped = FALSE;
  relay->wait_status = 0;
  g_clear_pointer (&relay->pool_id, g_free);
  g_clear_pointer (&relay->client_id, g_free);

  if (pipe2 (fds, O_CLOEXEC) < 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "pipe: %s", g_strerror (errno));
      return FALSE;
    }
  relay->pid = spawn_child (argv, envp, -1, fds[1], error);
  close (fds[1]);
  if (relay->pid < 0)
    {
      close (fds[0]);
      return FALSE;
    }
  relay->stdout_fd = fds[0];
  relay->drain = g_thread_new ("relay-stdout", relay_drain_thread, relay);

  deadline = g_get_monotonic_time () + 30 * G_TIME_SPAN_SECOND;
  g_mutex_lock (&relay->lock);
  while (relay->port == 0 && !relay->eof)
    if (!g_cond_wait_until (&relay->cond, &relay->lock, deadline))
      break;
  g_mutex_unlock (&relay->lock);

  if (relay->port <= 0 || relay->port > 65535)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                           relay->eof ? "the relay exited (or closed stdout) before printing "
                                        "`listening on http://127.0.0.1:PORT`"
                                      : "the relay did not print `listening on http://127.0.0.1:PORT` within 30 s");
      return FALSE;
    }
  return TRUE;
}

/* TRUE while the relay runs; records how it ended otherwise */
static gboolean
relay_alive (Relay *relay)
{
  if (relay->pid <= 0 || relay->reaped)
    return FALSE;
  if (waitpid (relay->pid, &relay->wait_status, WNOHANG) == relay->pid)
    {
      relay->reaped = TRUE;
      return FALSE;
    }
  return TRUE;
}

static gboolean
relay_stop (Relay   *relay,
            GError **error)
{
  gboolean ok = TRUE;

  if (relay->pid <= 0)
    return TRUE;
  if (relay_alive (relay))
    {
      kill (relay->pid, SIGTERM);
      if (!wait_child (relay->pid, 60 * NS_PER_S, &relay->wait_status))
        {
          kill (relay->pid, SIGKILL);
          wait_child (relay->pid, 10 * NS_PER_S, &relay->wait_status);
          g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                               "the relay did not exit within 60 s of SIGTERM");
          ok = FALSE;
        }
      relay->reaped = TRUE;
    }
  if (ok && (!WIFEXITED (relay->wait_status) || WEXITSTATUS (relay->wait_status) != 0))
    {
      g_autofree char *what = describe_status (relay->wait_status);
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "the relay ended with %s", what);
      ok = FALSE;
    }
  if (relay->drain != NULL)
    g_thread_join (g_steal_pointer (&relay->drain));
  return ok;
}

/* VmRSS and VmHWM in KiB */
static gboolean
proc_memory (pid_t    pid,
             guint64 *rss_kb,
             guint64 *hwm_kb)
{
  char        path[64];
  char        buf[4096];
  int         fd;
  ssize_t     n;
  const char *p;

  g_snprintf (path, sizeof path, "/proc/%d/status", (int) pid);
  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return FALSE;
  n = read (fd, buf, sizeof buf - 1);
  close (fd);
  if (n <= 0)
    return FALSE;
  buf[n] = '\0';
  if ((p = strstr (buf, "VmRSS:")) != NULL)
    *rss_kb = g_ascii_strtoull (p + 6, NULL, 10);
  if ((p = strstr (buf, "VmHWM:")) != NULL)
    *hwm_kb = g_ascii_strtoull (p + 6, NULL, 10);
  return TRUE;
}

/* utime + stime in seconds */
static double
proc_cpu_seconds (pid_t pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/stat", (int) pid);
  g_autofree char *text = read_text_file (path);
  g_auto (GStrv)   fields = NULL;
  const char      *p;

  if (text == NULL || (p = strrchr (text, ')')) == NULL)
    return 0;
  fields = g_strsplit (p + 2, " ", 0);
  /* after the command: state is field 3, utime 14, stime 15 */
  if (g_strv_length (fields) < 13)
    return 0;
  return (double) (g_ascii_strtoull (fields[11], NULL, 10) + g_ascii_strtoull (fields[12], NULL, 10)) / (double) sysconf (_SC_CLK_TCK);
}

static double
self_cpu_seconds (void)
{
  struct rusage ru;

  getrusage (RUSAGE_SELF, &ru);
  return (double) ru.ru_utime.tv_sec + (double) ru.ru_utime.tv_usec / 1e6 + (double) ru.ru_stime.tv_sec + (double) ru.ru_stime.tv_usec / 1e6;
}

/* CPU seconds spent busy by the whole machine (all cores) */
static double
system_busy_seconds (void)
{
  g_autofree char *text = read_text_file ("/proc/stat");
  guint64          v[8] = { 0 };

  if (text == NULL || !g_str_has_prefix (text, "cpu "))
    return 0;
  /* user nice system idle iowait irq softirq steal */
  if (sscanf (text + 4, "%" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT,
              &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7])
      != 8)
    return 0;
  /* irq and softirq are left out: loopback traffic of the relay and of
   * the load generator lands there */
  return (double) (v[0] + v[1] + v[2] + v[7]) / (double) sysconf (_SC_CLK_TCK);
}

static guint
proc_fd_count (pid_t pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/fd", (int) pid);
  g_autoptr (GDir) dir = g_dir_open (path, 0, NULL);
  guint            n = 0;

  if (dir == NULL)
    return 0;
  while (g_dir_read_name (dir) != NULL)
    n++;
  return n;
}

/* Sockets on the relay's port in CLOSE-WAIT (libsoup 3.2.3 leaks these) */
static guint
close_wait_count (int port)
{
  g_autofree char *text = read_text_file ("/proc/net/tcp");
  g_auto (GStrv)   lines = NULL;
  guint            n = 0;
  char             local[32];

  if (text == NULL)
    return 0;
  g_snprintf (local, sizeof local, ":%04X ", port);
  lines = g_strsplit (text, "\n", 0);
  for (guint i = 1; lines[i] != NULL; i++)
    {
      /* "  sl  local_address rem_address   st ..." */
      char *loc = strchr (lines[i], ':');
      if (loc == NULL)
        continue;
      loc += 2;
      while (*loc == ' ')
        loc++;
      /* local address "0100007F:PORT", then remote, then state */
      if (strncmp (loc + 8, local, strlen (local)) != 0)
        continue;
      char *state = loc + 8 + strlen (local);
      state = strchr (state, ' ');
      if (state != NULL && strncmp (state + 1, "08", 2) == 0)
        n++;
    }
  return n;
}

/* ---- devices and events ------------------------------------------------ */

typedef struct
{
  char  *id;
  gsize  id_len;
  char  *secret;
  char  *basic;       /* "Basic base64(id:secret)" */
  char  *ingest_head; /* request line and headers up to "Content-Length: " */
  gsize  ingest_head_len;
  guint8 battery;
  gint8  rssi;
} Device;

/* ---- connections ------------------------------------------------------- */

enum
{
  KIND_HTTP,
  KIND_WS
};
enum
{
  ST_NEW,
  ST_CONNECTING,
  ST_UPGRADING,
  ST_OPEN,
  ST_CLOSING,
  ST_CLOSED
};
enum
{
  ROLE_REGISTER,
  ROLE_HTTP_INGEST,
  ROLE_WS_INGEST,
  ROLE_SUBSCRIBER
};

typedef struct
{
  guint64 sent_ns;
  guint32 events;
  guint32 tag;
} InFlight;

typedef struct
{
  int         fd;
  guint8      kind;
  guint8      state;
  guint8      role;
  gboolean    write_blocked;
  gboolean    opened_once;
  gboolean    in_message;
  guint8      msg_opcode;
  const char *path; /* WebSocket upgrade target and auth; borrowed */
  const char *auth;
  char        ws_key[32];
  guint       device;
  FlBuf       in;
  FlBuf       out;
  FlBuf       scratch;
  FlBuf       msg;
  InFlight    q[MAX_DEPTH];
  guint       q_head;
  guint       q_len;
  gboolean    no_reuse; /* the last answer said Connection: close */
} Conn;

static inline gboolean
conn_can_send (const Conn *c)
{
  return c->state == ST_OPEN && !c->no_reuse;
}

static void
conn_push (Conn   *c,
           guint64 sent_ns,
           guint32 events,
           guint32 tag)
{
  g_assert (c->q_len < MAX_DEPTH);
  c->q[(c->q_head + c->q_len) % MAX_DEPTH] = (InFlight){ sent_ns, events, tag };
  c->q_len++;
}

static gboolean
conn_pop (Conn     *c,
          InFlight *req)
{
  if (c->q_len == 0)
    return FALSE;
  *req = c->q[c->q_head];
  c->q_head = (c->q_head + 1) % MAX_DEPTH;
  c->q_len--;
  return TRUE;
}

/* ---- phase components ---------------------------------------------------- */

/* Registers devices [next, to) over keep-alive connections */
typedef struct
{
  gboolean active;
  gboolean finished;
  guint    next;
  guint    to;
  guint    done;
  guint    failed;
} Register;

/* POST /ingest: closed loop (each connection sends again as soon as its
 * answer arrives) or paced at rate events/s over a pool of idle ones */
typedef struct
{
  gboolean active;
  gboolean finished;
  /* configuration */
  guint    per_request;
  guint64  total_events; /* 0: run for duration_ns */
  guint64  duration_ns;
  double   rate;          /* 0: closed loop */
  gboolean stamp;         /* data carries sentNs and benchSeq */
  gboolean single_object; /* one event as an object rather than [event] */
  gboolean record_latency;
  gboolean dup_check; /* at the end, resend the first request */
  guint    dev_first;
  guint    dev_count;
  /* progress */
  gboolean   stopped;
  gboolean   time_limited;
  guint64    t_start;
  guint64    t_last;
  guint64    next_device;
  guint64    requests_sent;
  guint64    requests_done;
  guint64    events_sent;
  guint64    accepted;
  guint64    duplicates;
  guint64    max_lag;
  GArray    *latencies; /* guint64 ns per request */
  GPtrArray *idle;      /* paced mode */
  FlBuf      saved;     /* the first request, for dup_check */
  gboolean   dup_sent;
  gboolean   dup_done;
} HttpIngest;

/* Device WebSockets: one per device; closed loop with depth messages in
 * flight, or paced at rate events/s round-robin over the connections */
typedef struct
{
  gboolean   active;
  gboolean   finished;
  guint      per_msg;
  guint      depth;
  guint64    total_events;
  guint64    duration_ns;
  double     rate;
  gboolean   single_object;
  guint      dev_first;
  guint      dev_count;
  GPtrArray *conns; /* borrowed from the engine */
  gboolean   stopped;
  gboolean   time_limited;
  gboolean   closing;
  guint64    close_deadline;
  guint      n_closed;
  guint64    t_start;
  guint64    t_last;
  guint      next_conn;
  guint64    msgs_sent;
  guint64    msgs_done;
  guint64    events_sent;
  guint64    accepted;
  guint64    duplicates;
  guint64    other_msgs;
  guint64    max_lag;
  GArray    *latencies; /* ack round trip per message */
} WsIngest;

/* The operator subscription of the latency phase */
typedef struct
{
  gboolean active;
  gboolean finished;
  gboolean subscribed;
  gboolean closing;
  gboolean closed;
  Conn    *conn;
  guint64  expected;
  guint64  warmup;
  guint8  *seen;
  guint64  received;
  guint64  repeated;
  guint64  foreign;
  guint64  other_msgs;
  gint64   last_seq;
  guint64  seq_errors;
  guint64  wait_deadline;
  GArray  *delays;
} Subscriber;

typedef struct
{
  char    *label;
  double   value;
  char    *unit;
  double   target;
  gboolean at_least;
} Figure;

typedef struct
{
  /* options */
  gboolean quick;
  guint    n_devices;
  guint    rss_devices;
  gboolean verbose;
  guint    max_setup; /* connections connecting or upgrading at once */

  Relay              relay;
  char             **envp;
  guint              phases_run;
  struct sockaddr_in addr;
  char              *host;   /* "127.0.0.1:PORT" */
  char              *bearer; /* "Bearer <accessToken>" */
  char              *token;

  Device *devices;
  guint   n_registered;
  guint   devices_cap;

  FlRng rng;
  FlBuf body; /* scratch for request bodies */

  /* engine */
  int         epfd;
  int         tfd;
  GPtrArray  *conns;
  GQueue      connect_queue;
  guint       setup_pending;
  guint       n_opened;
  guint       reconnects;
  gboolean    started;
  gboolean    loop_done;
  gboolean    aborted;
  guint64     run_start;
  guint64     soft_limit;
  guint64     hard_limit;
  guint64     last_progress;
  guint64     next_housekeeping;
  guint64     next_report;
  guint       run_errors;
  const char *run_name;
  double      cpu_relay0;
  double      cpu_self0;
  double      cpu_system0;
  double      max_other_cores;
  char       *max_other_phase;
  guint64     cpu_t0;
  guint64     rss_peak_kb;
  guint64     rss_last_kb;
  guint64     hwm_kb;

  Register   reg;
  HttpIngest http;
  WsIngest   ws;
  Subscriber sub;

  /* results */
  GArray    *figures;
  guint      total_errors;
  GPtrArray *failures; /* one line per failed phase or check */
  gint64     events_base;
  gint64     events_expected;
} Bench;

static void bench_on_opened (Bench *b, Conn *c);
static void bench_on_response (Bench *b, Conn *c, const FlHttpResponse *r, const InFlight *req);
static void bench_on_message (Bench *b, Conn *c, const char *text, gsize len);
static void bench_on_closed (Bench *b, Conn *c);

static void
bench_error (Bench      *b,
             const char *format,
             ...) G_GNUC_PRINTF (2, 3);

static void
bench_error (Bench      *b,
             const char *format,
             ...)
{
  va_list args;

  b->run_errors++;
  b->total_errors++;
  if (b->run_errors <= MAX_ERRORS_SHOWN)
    {
      g_autofree char *msg = NULL;
      va_start (args, format);
      msg = g_strdup_vprintf (format, args);
      va_end (args);
      g_printerr ("ERROR [%s]: %s\n", b->run_name ? b->run_name : "setup", msg);
    }
  else if (b->run_errors == MAX_ERRORS_SHOWN + 1)
    g_printerr ("ERROR [%s]: (further errors not shown)\n", b->run_name ? b->run_name : "setup");
  if (b->run_errors >= MAX_ERRORS)
    {
      b->aborted = TRUE;
      b->loop_done = TRUE;
    }
}

#define bench_abort(b, ...)       \
  G_STMT_START                    \
  {                               \
    bench_error (b, __VA_ARGS__); \
    (b)->aborted = TRUE;          \
    (b)->loop_done = TRUE;        \
  }                               \
  G_STMT_END

static void
add_figure (Bench      *b,
            const char *label,
            double      value,
            const char *unit,
            double      target,
            gboolean    at_least)
{
  Figure f = { g_strdup (label), value, g_strdup (unit), target, at_least };

  g_array_append_val (b->figures, f);
}

/* ---- the engine: one epoll set, edge-triggered --------------------------- */

static void conn_process_input (Bench *b, Conn *c);

static Conn *
conn_new (Bench      *b,
          guint8      kind,
          guint8      role,
          const char *path,
          const char *auth,
          guint       device)
{
  Conn *c = g_new0 (Conn, 1);

  c->fd = -1;
  c->kind = kind;
  c->role = role;
  c->path = path;
  c->auth = auth;
  c->device = device;
  g_ptr_array_add (b->conns, c);
  g_queue_push_tail (&b->connect_queue, c);
  return c;
}

static void
conn_free (gpointer data)
{
  Conn *c = data;

  if (c->fd >= 0)
    close (c->fd);
  fl_buf_clear (&c->in);
  fl_buf_clear (&c->out);
  fl_buf_clear (&c->scratch);
  fl_buf_clear (&c->msg);
  g_free (c);
}

static void
conn_shut (Bench *b,
           Conn  *c)
{
  if (c->fd >= 0)
    {
      close (c->fd);
      c->fd = -1;
    }
  if (c->state == ST_CONNECTING || c->state == ST_UPGRADING)
    b->setup_pending--;
  c->state = ST_CLOSED;
}

static void conns_pump (Bench *b);

static void
conn_connect (Bench *b,
              Conn  *c)
{
  struct epoll_event ev = { 0 };
  int                one = 1;

  c->fd = socket (AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0)
    {
      bench_abort (b, "socket: %s", g_strerror (errno));
      return;
    }
  setsockopt (c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect (c->fd, (struct sockaddr *) &b->addr, sizeof b->addr) < 0 && errno != EINPROGRESS)
    {
      bench_abort (b, "connect to %s: %s", b->host, g_strerror (errno));
      close (c->fd);
      c->fd = -1;
      return;
    }
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.ptr = c;
  if (epoll_ctl (b->epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
    g_error ("epoll_ctl: %s", g_strerror (errno));
  c->state = ST_CONNECTING;
  c->write_blocked = FALSE;
  b->setup_pending++;
}

static void
conns_pump (Bench *b)
{
  while (b->setup_pending < b->max_setup && !b->aborted && !g_queue_is_empty (&b->connect_queue))
    conn_connect (b, g_queue_pop_head (&b->connect_queue));
}

static void
conn_flush (Bench *b,
            Conn  *c)
{
  if (c->write_blocked || c->fd < 0)
    return;
  while (fl_buf_pending (&c->out) > 0)
    {
      ssize_t n = send (c->fd, fl_buf_head (&c->out), fl_buf_pending (&c->out),
                        MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0)
        fl_buf_consume (&c->out, (gsize) n);
      else if (n < 0 && errno == EINTR)
        continue;
      else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        {
          c->write_blocked = TRUE;
          return;
        }
      else
        {
          if (c->state == ST_CLOSING)
            {
              conn_shut (b, c);
              bench_on_closed (b, c);
            }
          else
            bench_abort (b, "send: %s (the relay dropped a connection)", g_strerror (errno));
          return;
        }
    }
}

/* The relay closed an idle keep-alive connection: open it again */
static void
conn_reconnect (Bench *b,
                Conn  *c)
{
  conn_shut (b, c);
  fl_buf_reset (&c->in);
  fl_buf_reset (&c->out);
  c->q_len = 0;
  c->state = ST_NEW;
  b->reconnects++;
  g_queue_push_tail (&b->connect_queue, c);
  conns_pump (b);
}

static void
conn_send_upgrade (Bench *b,
                   Conn  *c)
{
  guint8 key[16];

  for (guint i = 0; i < 16; i++)
    key[i] = (guint8) fl_rng_next (&b->rng);
  g_autofree char *key64 = g_base64_encode (key, sizeof key);
  g_strlcpy (c->ws_key, key64, sizeof c->ws_key);

  fl_buf_append_printf (&c->out,
                        "GET %s HTTP/1.1\r\n"
                        "Host: %s\r\n"
                        "Upgrade: websocket\r\n"
                        "Connection: Upgrade\r\n"
                        "Sec-WebSocket-Key: %s\r\n"
                        "Sec-WebSocket-Version: 13\r\n"
                        "%s%s%s"
                        "\r\n",
                        c->path, b->host, c->ws_key,
                        c->auth ? "Authorization: " : "", c->auth ? c->auth : "",
                        c->auth ? "\r\n" : "");
  conn_flush (b, c);
}

static void
conn_became_open (Bench *b,
                  Conn  *c)
{
  b->setup_pending--;
  c->state = ST_OPEN;
  b->last_progress = now_ns ();
  if (!c->opened_once)
    {
      c->opened_once = TRUE;
      b->n_opened++;
    }
  conns_pump (b);
  bench_on_opened (b, c);
}

static void
conn_send_ws (Bench      *b,
              Conn       *c,
              guint8      opcode,
              const void *payload,
              gsize       len,
              gboolean    flush)
{
  guint64 r = fl_rng_next (&b->rng);
  guint8  mask[4] = { (guint8) r, (guint8) (r >> 8), (guint8) (r >> 16), (guint8) (r >> 24) };

  fl_ws_append_frame (&c->out, opcode, payload, len, mask);
  if (flush)
    conn_flush (b, c);
}

/* Starts the closing handshake (code 1000) */
static void
conn_ws_close (Bench *b,
               Conn  *c)
{
  static const guint8 normal[2] = { 0x03, 0xe8 };

  if (c->state != ST_OPEN)
    {
      if (c->state != ST_CLOSING && c->state != ST_CLOSED)
        {
          conn_shut (b, c);
          bench_on_closed (b, c);
        }
      return;
    }
  conn_send_ws (b, c, FL_WS_CLOSE, normal, sizeof normal, TRUE);
  if (c->state == ST_OPEN)
    c->state = ST_CLOSING;
}

static void
conn_eof (Bench *b,
          Conn  *c)
{
  if (c->kind == KIND_HTTP && c->state == ST_OPEN && c->q_len == 0)
    conn_reconnect (b, c);
  else if (c->state == ST_CLOSING)
    {
      /* the relay dropped the connection instead of answering our close
       * frame: tolerated, but counted */
      conn_shut (b, c);
      bench_on_closed (b, c);
    }
  else
    {
      const char *what = c->state == ST_UPGRADING ? "during the WebSocket upgrade" : c->kind == KIND_WS ? "a WebSocket without a close frame"
                                                                                                        : "with a request in flight";
      bench_abort (b, "the relay closed a connection (%s)", what);
      conn_shut (b, c);
    }
}

static void
conn_connected (Bench *b,
                Conn  *c)
{
  int       err = 0;
  socklen_t len = sizeof err;

  if (getsockopt (c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
    err = errno;
  if (err != 0)
    {
      bench_abort (b, "connect to %s: %s", b->host, g_strerror (err));
      conn_shut (b, c);
      return;
    }
  if (c->kind == KIND_WS)
    {
      c->state = ST_UPGRADING;
      conn_send_upgrade (b, c);
    }
  else
    {
      c->state = ST_CONNECTING;
      conn_became_open (b, c);
    }
}

static void
conn_on_event (Bench  *b,
               Conn   *c,
               guint32 events)
{
  gboolean eof = FALSE;
  gboolean hup = (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;

  if (c->state == ST_CLOSED || c->state == ST_NEW)
    return;
  if (c->state == ST_CONNECTING)
    {
      if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
        return;
      conn_connected (b, c);
      if (c->state == ST_CLOSED)
        return;
    }
  else if (events & EPOLLOUT)
    {
      c->write_blocked = FALSE;
      conn_flush (b, c);
    }

  if (!(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) || c->fd < 0)
    return;

  for (;;)
    {
      /* modest per connection: there may be ten thousand of them */
      char   *dest = fl_buf_reserve (&c->in, 16 * 1024);
      gsize   room = c->in.cap - c->in.len;
      ssize_t n = recv (c->fd, dest, room, MSG_DONTWAIT);

      if (n > 0)
        {
          c->in.len += (gsize) n;
          /* a short read drained the socket; new data raises a new edge */
          if ((gsize) n < room && !hup)
            break;
        }
      else if (n == 0)
        {
          eof = TRUE;
          break;
        }
      else if (errno == EINTR)
        continue;
      else if (errno == EAGAIN || errno == EWOULDBLOCK)
        break;
      else
        {
          if (c->state == ST_CLOSING)
            {
              conn_shut (b, c);
              bench_on_closed (b, c);
              return;
            }
          bench_abort (b, "recv: %s (the relay reset a connection)", g_strerror (errno));
          conn_shut (b, c);
          return;
        }
    }

  conn_process_input (b, c);
  if (eof && c->state != ST_CLOSED && c->state != ST_NEW)
    conn_eof (b, c);
}

static void
conn_ws_frame (Bench           *b,
               Conn            *c,
               const FlWsFrame *f)
{
  switch (f->opcode)
    {
    case FL_WS_TEXT:
    case FL_WS_BINARY:
      if (c->in_message)
        {
          bench_abort (b, "WebSocket: a new message inside a fragmented one");
          return;
        }
      if (f->fin)
        bench_on_message (b, c, f->payload, f->payload_len);
      else
        {
          c->in_message = TRUE;
          c->msg_opcode = f->opcode;
          fl_buf_reset (&c->msg);
          fl_buf_append (&c->msg, f->payload, f->payload_len);
        }
      break;

    case FL_WS_CONTINUATION:
      if (!c->in_message)
        {
          bench_abort (b, "WebSocket: a continuation frame outside a message");
          return;
        }
      if (c->msg.len + f->payload_len > MAX_WS_PAYLOAD)
        {
          bench_abort (b, "WebSocket: message over %u bytes", MAX_WS_PAYLOAD);
          return;
        }
      fl_buf_append (&c->msg, f->payload, f->payload_len);
      if (f->fin)
        {
          c->in_message = FALSE;
          bench_on_message (b, c, c->msg.data, c->msg.len);
        }
      break;

    case FL_WS_PING:
      conn_send_ws (b, c, FL_WS_PONG, f->payload, f->payload_len, TRUE);
      break;

    case FL_WS_PONG:
      break;

    case FL_WS_CLOSE:
      if (c->state == ST_CLOSING)
        {
          conn_shut (b, c);
          bench_on_closed (b, c);
        }
      else
        {
          guint       code = f->payload_len >= 2 ? ((guint8) f->payload[0] << 8 | (guint8) f->payload[1]) : 1005;
          int         reason_len = f->payload_len > 2 ? (int) f->payload_len - 2 : 0;
          const char *reason = f->payload_len > 2 ? f->payload + 2 : "";

          /* answer, then report: the relay closed on its own */
          conn_send_ws (b, c, FL_WS_CLOSE, f->payload, MIN (f->payload_len, 2), TRUE);
          bench_abort (b, "the relay closed a WebSocket (%s): code %u, reason \"%.*s\"",
                       c->role == ROLE_SUBSCRIBER ? "operator" : "device",
                       code, reason_len, reason);
          conn_shut (b, c);
          bench_on_closed (b, c);
        }
      break;

    default:
      g_assert_not_reached ();
    }
}

static void
conn_process_input (Bench *b,
                    Conn  *c)
{
  while (c->state != ST_CLOSED && c->state != ST_NEW && fl_buf_pending (&c->in) > 0 && !b->aborted)
    {
      g_autoptr (GError) error = NULL;

      if (c->kind == KIND_HTTP || c->state == ST_UPGRADING)
        {
          FlHttpResponse r;
          FlParseStatus  st = fl_http_parse_response (fl_buf_head (&c->in), fl_buf_pending (&c->in),
                                                      &c->scratch, &r, &error);
          if (st == FL_PARSE_INCOMPLETE)
            return;
          if (st == FL_PARSE_ERROR)
            {
              bench_abort (b, "bad HTTP response: %s", error->message);
              conn_shut (b, c);
              return;
            }

          if (c->state == ST_UPGRADING)
            {
              g_autofree char *expect = fl_ws_accept_for_key (c->ws_key);

              if (r.status != 101 || !r.upgrade_websocket || r.ws_accept == NULL || !token_matches (r.ws_accept, r.ws_accept_len, expect))
                {
                  bench_abort (b, "WebSocket upgrade of GET %.40s%s refused: HTTP %d%s%.*s",
                               c->path, strlen (c->path) > 40 ? "..." : "", r.status,
                               r.status == 101 ? " (bad Upgrade or Sec-WebSocket-Accept) " : ": ",
                               (int) MIN (r.body_len, 300), r.body);
                  conn_shut (b, c);
                  return;
                }
              fl_buf_consume (&c->in, r.consumed);
              conn_became_open (b, c);
            }
          else
            {
              InFlight req;

              if (!conn_pop (c, &req))
                {
                  bench_abort (b, "an HTTP response nobody asked for: HTTP %d", r.status);
                  conn_shut (b, c);
                  return;
                }
              b->last_progress = now_ns ();
              c->no_reuse = !r.keep_alive;
              bench_on_response (b, c, &r, &req);
              if (c->state == ST_CLOSED)
                return;
              fl_buf_consume (&c->in, r.consumed);
              if (c->no_reuse)
                {
                  c->no_reuse = FALSE;
                  if (c->q_len > 0)
                    {
                      bench_abort (b, "the relay sent Connection: close with requests pending");
                      conn_shut (b, c);
                      return;
                    }
                  conn_reconnect (b, c);
                  return;
                }
            }
        }
      else
        {
          FlWsFrame     f;
          FlParseStatus st = fl_ws_parse_frame (fl_buf_head (&c->in), fl_buf_pending (&c->in),
                                                MAX_WS_PAYLOAD, &f, &error);
          if (st == FL_PARSE_INCOMPLETE)
            return;
          if (st == FL_PARSE_ERROR)
            {
              bench_abort (b, "bad WebSocket frame from the relay: %s", error->message);
              conn_shut (b, c);
              return;
            }
          b->last_progress = now_ns ();
          conn_ws_frame (b, c, &f);
          if (c->state == ST_CLOSED)
            return;
          fl_buf_consume (&c->in, f.consumed);
        }
    }
}

/* ---- devices and events ------------------------------------------------ */

static void
device_init (Bench *b,
             guint  i)
{
  Device *d = &b->devices[i];

  d->id = g_strdup_printf ("bench-%06u", i + 1);
  d->id_len = strlen (d->id);
  d->battery = (guint8) (40 + fl_rng_below (&b->rng, 61));
  d->rssi = (gint8) - (40 + (gint) fl_rng_below (&b->rng, 60));
}

static void
device_set_secret (Bench      *b,
                   Device     *d,
                   const char *secret)
{
  g_autofree char *pair = g_strdup_printf ("%s:%s", d->id, secret);
  g_autofree char *pair64 = g_base64_encode ((const guchar *) pair, strlen (pair));

  /* secret may be d->secret itself (after a relay restart) */
  char *copy = g_strdup (secret);

  g_free (d->secret);
  g_free (d->basic);
  g_free (d->ingest_head);
  d->secret = copy;
  d->basic = g_strdup_printf ("Basic %s", pair64);
  d->ingest_head = g_strdup_printf ("POST /ingest HTTP/1.1\r\n"
                                    "Host: %s\r\n"
                                    "Authorization: %s\r\n"
                                    "Content-Type: application/json\r\n"
                                    "Content-Length: ",
                                    b->host, d->basic);
  d->ingest_head_len = strlen (d->ingest_head);
}

static inline void
append_tenths (FlBuf *out,
               guint  tenths)
{
  char frac[2] = { '.', (char) ('0' + tenths % 10) };

  fl_buf_append_u64 (out, tenths / 10);
  fl_buf_append (out, frac, 2);
}

/* One event; sent_ns and bench_seq go into data when >= 0 */
static void
append_event (Bench        *b,
              FlBuf        *out,
              const Device *d,
              gint64        ts_ms,
              gint64        sent_ns,
              gint64        bench_seq)
{
  guint64 r = fl_rng_next (&b->rng);
  char   *p;

  fl_buf_append_lit (out, "{\"id\":\"");
  p = fl_buf_reserve (out, FL_UUID_LEN);
  fl_uuid4_format (&b->rng, p);
  out->len += FL_UUID_LEN;
  fl_buf_append_lit (out, "\",\"timestamp\":");
  fl_buf_append_i64 (out, ts_ms);
  fl_buf_append_lit (out, ",\"source\":\"");
  fl_buf_append (out, d->id, d->id_len);
  fl_buf_append_lit (out, "\",\"type\":\"telemetry\",\"data\":{\"temperature\":");
  append_tenths (out, 150 + (guint) (r % 200));
  fl_buf_append_lit (out, ",\"humidity\":");
  append_tenths (out, 300 + (guint) ((r >> 16) % 500));
  fl_buf_append_lit (out, ",\"battery\":");
  fl_buf_append_u64 (out, d->battery);
  fl_buf_append_lit (out, ",\"rssi\":");
  fl_buf_append_i64 (out, d->rssi);
  if (sent_ns >= 0)
    {
      fl_buf_append_lit (out, ",\"sentNs\":");
      fl_buf_append_i64 (out, sent_ns);
      fl_buf_append_lit (out, ",\"benchSeq\":");
      fl_buf_append_i64 (out, bench_seq);
    }
  fl_buf_append_lit (out, "}}");
}

/* n events of device d into b->body: an array, or one object */
static void
format_events (Bench        *b,
               const Device *d,
               guint         n,
               gboolean      single_object,
               guint64       now,
               gint64        first_seq)
{
  FlBuf   *body = &b->body;
  gint64   ts = g_get_real_time () / 1000;
  gboolean stamp = first_seq >= 0;

  fl_buf_reset (body);
  if (n == 1 && single_object)
    {
      append_event (b, body, d, ts, stamp ? (gint64) now : -1, first_seq);
      return;
    }
  fl_buf_append_lit (body, "[");
  for (guint i = 0; i < n; i++)
    {
      if (i > 0)
        fl_buf_append_lit (body, ",");
      append_event (b, body, d, ts, stamp ? (gint64) now : -1, stamp ? first_seq + i : -1);
    }
  fl_buf_append_lit (body, "]");
}

/* ---- registration -------------------------------------------------------- */

static void
register_fill (Bench *b,
               Conn  *c)
{
  Register *reg = &b->reg;
  FlBuf    *body = &b->body;
  guint     i;

  if (!conn_can_send (c) || c->q_len > 0 || reg->next >= reg->to)
    return;
  i = reg->next++;
  fl_buf_reset (body);
  fl_buf_append_printf (body,
                        "{\"deviceId\":\"%s\",\"name\":\"Bench sensor %u\",\"type\":\"sensor\","
                        "\"capabilities\":{\"metrics\":[\"temperature\",\"humidity\"]},"
                        "\"tags\":[\"bench\"]}",
                        b->devices[i].id, i + 1);
  fl_buf_append_printf (&c->out,
                        "POST /devices HTTP/1.1\r\n"
                        "Host: %s\r\n"
                        "Authorization: %s\r\n"
                        "Content-Type: application/json\r\n"
                        "Content-Length: %" G_GSIZE_FORMAT "\r\n"
                        "\r\n",
                        b->host, b->bearer, body->len);
  fl_buf_append (&c->out, body->data, body->len);
  conn_push (c, now_ns (), 0, i);
  conn_flush (b, c);
}

static void
register_response (Bench                *b,
                   Conn                 *c,
                   const FlHttpResponse *r,
                   const InFlight       *req)
{
  Register              *reg = &b->reg;
  Device                *d = &b->devices[req->tag];
  g_autoptr (JsonParser) parser = json_parser_new_immutable ();
  g_autoptr (GError)     error = NULL;
  JsonNode              *root;
  JsonObject            *obj;
  const char            *secret;
  const char            *id;

  if (r->status != 201 && r->status != 200)
    {
      bench_error (b, "POST /devices (%s): HTTP %d: %.*s", d->id, r->status,
                   (int) MIN (r->body_len, 300), r->body);
      reg->failed++;
      goto next;
    }
  if (!json_parser_load_from_data (parser, r->body, (gssize) r->body_len, &error) || !JSON_NODE_HOLDS_OBJECT (root = json_parser_get_root (parser)))
    {
      bench_error (b, "POST /devices (%s): the answer is not a JSON object: %.*s", d->id,
                   (int) MIN (r->body_len, 300), r->body);
      reg->failed++;
      goto next;
    }
  obj = json_node_get_object (root);
  secret = json_object_get_string_member_with_default (obj, "deviceSecret", NULL);
  id = json_object_get_string_member_with_default (obj, "deviceId", NULL);
  if (secret == NULL || *secret == '\0' || g_strcmp0 (id, d->id) != 0)
    {
      bench_error (b, "POST /devices (%s): no deviceSecret, or another deviceId, in %.*s", d->id,
                   (int) MIN (r->body_len, 300), r->body);
      reg->failed++;
      goto next;
    }
  device_set_secret (b, d, secret);
  reg->done++;

next:
  register_fill (b, c);
}

/* ---- POST /ingest ---------------------------------------------------------- */

static void
http_send_ingest (Bench *b,
                  Conn  *c,
                  guint  n)
{
  HttpIngest   *h = &b->http;
  guint         index = h->dev_first + (guint) (h->next_device++ % h->dev_count);
  const Device *d = &b->devices[index];
  guint64       now = now_ns ();

  format_events (b, d, n, h->single_object, now, h->stamp ? (gint64) h->events_sent : -1);

  if (h->dup_check && h->requests_sent == 0)
    {
      fl_buf_reset (&h->saved);
      fl_buf_append (&h->saved, d->ingest_head, d->ingest_head_len);
      fl_buf_append_u64 (&h->saved, b->body.len);
      fl_buf_append_lit (&h->saved, "\r\n\r\n");
      fl_buf_append (&h->saved, b->body.data, b->body.len);
    }

  fl_buf_append (&c->out, d->ingest_head, d->ingest_head_len);
  fl_buf_append_u64 (&c->out, b->body.len);
  fl_buf_append_lit (&c->out, "\r\n\r\n");
  fl_buf_append (&c->out, b->body.data, b->body.len);
  conn_push (c, now, n, index);
  h->requests_sent++;
  h->events_sent += n;
  if (h->total_events > 0 && h->events_sent >= h->total_events)
    h->stopped = TRUE;
  conn_flush (b, c);
}

static void
http_fill (Bench *b,
           Conn  *c)
{
  HttpIngest *h = &b->http;

  if (h->stopped || !conn_can_send (c) || c->q_len > 0)
    return;
  if (h->rate > 0)
    {
      g_ptr_array_add (h->idle, c);
      return;
    }
  http_send_ingest (b, c, h->total_events > 0 ? (guint) MIN ((guint64) h->per_request, h->total_events - h->events_sent) : h->per_request);
}

static void
http_pump (Bench  *b,
           guint64 now)
{
  HttpIngest *h = &b->http;
  guint64     due;

  if (h->stopped || !b->started)
    return;
  due = (guint64) ((double) (now - h->t_start) * h->rate / 1e9);
  if (h->total_events > 0)
    due = MIN (due, h->total_events);
  while (h->events_sent < due && h->idle->len > 0 && !h->stopped)
    {
      Conn *c = g_ptr_array_steal_index_fast (h->idle, h->idle->len - 1);

      if (!conn_can_send (c) || c->q_len > 0)
        continue;
      http_send_ingest (b, c, (guint) MIN ((guint64) h->per_request, due - h->events_sent));
    }
  if (due > h->events_sent)
    h->max_lag = MAX (h->max_lag, due - h->events_sent);
}

static void sub_check_done (Bench *b, guint64 now);

static void
http_check_done (Bench  *b,
                 guint64 now)
{
  HttpIngest *h = &b->http;

  if (!h->active || h->finished || !h->stopped || h->requests_done < h->requests_sent)
    return;
  if (h->dup_check && !h->dup_done && h->saved.len > 0)
    {
      if (h->dup_sent)
        return;
      for (guint i = 0; i < b->conns->len; i++)
        {
          Conn *c = g_ptr_array_index (b->conns, i);

          if (c->role != ROLE_HTTP_INGEST || !conn_can_send (c) || c->q_len > 0)
            continue;
          fl_buf_append (&c->out, h->saved.data, h->saved.len);
          conn_push (c, now, MIN ((guint64) h->per_request, h->events_sent), DUP_TAG);
          conn_flush (b, c);
          h->dup_sent = TRUE;
          return;
        }
      return;
    }
  h->finished = TRUE;
  sub_check_done (b, now);
}

static void
http_response (Bench                *b,
               Conn                 *c,
               const FlHttpResponse *r,
               const InFlight       *req)
{
  HttpIngest        *h = &b->http;
  guint64            now = now_ns ();
  FlIngestResult     res;
  g_autoptr (GError) error = NULL;

  if (req->tag == DUP_TAG)
    {
      h->dup_done = TRUE;
      if (r->status != 200 || !fl_ingest_result_parse (r->body, r->body_len, &res, &error))
        bench_error (b, "resending a stored batch: HTTP %d: %.*s", r->status,
                     (int) MIN (r->body_len, 300), r->body);
      else
        {
          if (res.accepted != 0 || res.duplicates != req->events || res.rejected != 0)
            bench_error (b, "resending a stored batch of %u events: accepted %" G_GINT64_FORMAT ", duplicates %" G_GINT64_FORMAT ", rejected %u (expected 0, %u, 0)",
                         req->events, res.accepted, res.duplicates, res.rejected, req->events);
          else
            g_print ("%s-dedup: ok (a resent batch of %u events came back as %u duplicates)\n",
                     b->run_name, req->events, req->events);
          h->accepted += (guint64) res.accepted;
          fl_ingest_result_clear (&res);
        }
      http_check_done (b, now);
      return;
    }

  h->requests_done++;
  h->t_last = now;
  if (h->record_latency)
    {
      guint64 lat = now - req->sent_ns;
      g_array_append_val (h->latencies, lat);
    }

  if (r->status != 200)
    bench_error (b, "POST /ingest (%s, %u events): HTTP %d: %.*s",
                 b->devices[req->tag].id, req->events, r->status,
                 (int) MIN (r->body_len, 300), r->body);
  else if (!fl_ingest_result_parse (r->body, r->body_len, &res, &error))
    bench_error (b, "POST /ingest: %s", error->message);
  else
    {
      if (res.accepted != req->events || res.duplicates != 0 || res.rejected != 0)
        bench_error (b, "POST /ingest (%s) of %u new events: accepted %" G_GINT64_FORMAT ", duplicates %" G_GINT64_FORMAT ", rejected %u%s%s",
                     b->devices[req->tag].id, req->events, res.accepted, res.duplicates,
                     res.rejected, res.first_rejection ? "; first: " : "",
                     res.first_rejection ? res.first_rejection : "");
      h->accepted += (guint64) MAX (res.accepted, 0);
      h->duplicates += (guint64) MAX (res.duplicates, 0);
      fl_ingest_result_clear (&res);
    }

  if (h->rate > 0)
    {
      if (!h->stopped && !c->no_reuse)
        g_ptr_array_add (h->idle, c);
      http_pump (b, now);
    }
  else
    http_fill (b, c);
  http_check_done (b, now);
}

static void
http_tick (Bench  *b,
           guint64 now)
{
  HttpIngest *h = &b->http;

  if (!h->active || !b->started || h->finished)
    return;
  if (!h->stopped && h->duration_ns > 0 && now >= h->t_start + h->duration_ns)
    h->stopped = TRUE;
  if (!h->stopped && now >= b->soft_limit)
    h->stopped = h->time_limited = TRUE;
  if (h->rate > 0)
    http_pump (b, now);
  http_check_done (b, now);
}

static void
http_start (Bench  *b,
            guint64 now)
{
  HttpIngest *h = &b->http;

  h->t_start = h->t_last = now;
  for (guint i = 0; i < b->conns->len; i++)
    {
      Conn *c = g_ptr_array_index (b->conns, i);

      if (c->role == ROLE_HTTP_INGEST)
        http_fill (b, c);
    }
  if (h->rate > 0)
    http_pump (b, now);
}

/* ---- device WebSockets -------------------------------------------------- */

static void
ws_send_batch (Bench  *b,
               Conn   *c,
               guint   n,
               guint64 now)
{
  WsIngest *w = &b->ws;

  format_events (b, &b->devices[c->device], n, w->single_object, now, -1);
  conn_send_ws (b, c, FL_WS_TEXT, b->body.data, b->body.len, FALSE);
  conn_push (c, now, n, 0);
  w->msgs_sent++;
  w->events_sent += n;
  if (w->total_events > 0 && w->events_sent >= w->total_events)
    w->stopped = TRUE;
}

static void
ws_fill (Bench *b,
         Conn  *c)
{
  WsIngest *w = &b->ws;
  guint64   now;

  if (w->rate > 0 || w->stopped || !conn_can_send (c) || c->q_len >= w->depth)
    return;
  now = now_ns ();
  while (!w->stopped && c->q_len < w->depth)
    ws_send_batch (b, c, w->total_events > 0 ? (guint) MIN ((guint64) w->per_msg, w->total_events - w->events_sent) : w->per_msg,
                   now);
  conn_flush (b, c);
}

static void
ws_pump (Bench  *b,
         guint64 now)
{
  WsIngest *w = &b->ws;
  guint64   due;
  guint     n_conns = w->conns->len;

  if (w->stopped || !b->started || n_conns == 0)
    return;
  due = (guint64) ((double) (now - w->t_start) * w->rate / 1e9);
  while (w->events_sent + w->per_msg <= due && !w->stopped)
    {
      Conn *c = NULL;

      for (guint tries = 0; tries < n_conns; tries++)
        {
          Conn *candidate = g_ptr_array_index (w->conns, w->next_conn);

          w->next_conn = (w->next_conn + 1) % n_conns;
          if (conn_can_send (candidate) && candidate->q_len < w->depth)
            {
              c = candidate;
              break;
            }
        }
      if (c == NULL)
        break;
      ws_send_batch (b, c, w->per_msg, now);
      conn_flush (b, c);
    }
  if (due > w->events_sent)
    w->max_lag = MAX (w->max_lag, due - w->events_sent);
}

static void
ws_check_done (Bench  *b,
               guint64 now)
{
  WsIngest *w = &b->ws;

  if (!w->active || w->finished)
    return;
  if (w->closing)
    {
      if (w->n_closed >= w->conns->len)
        w->finished = TRUE;
      return;
    }
  if (!w->stopped || w->msgs_done < w->msgs_sent)
    return;
  w->closing = TRUE;
  w->close_deadline = now + CLOSE_WAIT_NS;
  for (guint i = 0; i < w->conns->len; i++)
    conn_ws_close (b, g_ptr_array_index (w->conns, i));
  if (w->n_closed >= w->conns->len)
    w->finished = TRUE;
}

static void
ws_message (Bench      *b,
            Conn       *c,
            const char *text,
            gsize       len)
{
  WsIngest          *w = &b->ws;
  const char        *type = NULL;
  gsize              type_len = 0;
  guint64            now = now_ns ();
  FlIngestResult     res;
  InFlight           req;
  g_autoptr (GError) error = NULL;

  if (!fl_json_find_string (text, len, "type", &type, &type_len))
    {
      bench_error (b, "device WebSocket: a message without a type: %.*s", (int) MIN (len, 200), text);
      return;
    }
  if (token_matches (type, type_len, "error"))
    {
      bench_error (b, "device WebSocket (%s): %.*s", b->devices[c->device].id,
                   (int) MIN (len, 300), text);
      return;
    }
  if (!token_matches (type, type_len, "ack"))
    {
      w->other_msgs++;
      return;
    }
  if (!conn_pop (c, &req))
    {
      bench_error (b, "device WebSocket: an ack with no message waiting for one: %.*s",
                   (int) MIN (len, 200), text);
      return;
    }
  w->msgs_done++;
  w->t_last = now;
  {
    guint64 lat = now - req.sent_ns;
    g_array_append_val (w->latencies, lat);
  }
  if (!fl_ingest_result_parse (text, len, &res, &error))
    bench_error (b, "device WebSocket ack: %s", error->message);
  else
    {
      if (res.accepted != req.events || res.duplicates != 0 || res.rejected != 0)
        bench_error (b, "device WebSocket (%s) message of %u new events: accepted %" G_GINT64_FORMAT ", duplicates %" G_GINT64_FORMAT ", rejected %u%s%s",
                     b->devices[c->device].id, req.events, res.accepted, res.duplicates,
                     res.rejected, res.first_rejection ? "; first: " : "",
                     res.first_rejection ? res.first_rejection : "");
      w->accepted += (guint64) MAX (res.accepted, 0);
      w->duplicates += (guint64) MAX (res.duplicates, 0);
      fl_ingest_result_clear (&res);
    }
  if (w->rate > 0)
    ws_pump (b, now);
  else
    ws_fill (b, c);
  ws_check_done (b, now);
}

static void
ws_tick (Bench  *b,
         guint64 now)
{
  WsIngest *w = &b->ws;

  if (!w->active || !b->started || w->finished)
    return;
  if (!w->stopped && w->duration_ns > 0 && now >= w->t_start + w->duration_ns)
    w->stopped = TRUE;
  if (!w->stopped && now >= b->soft_limit)
    w->stopped = w->time_limited = TRUE;
  if (w->rate > 0)
    ws_pump (b, now);
  if (w->closing && !w->finished && now >= w->close_deadline)
    {
      bench_error (b, "%u of %u device WebSockets did not finish the closing handshake within %.0f s",
                   w->conns->len - w->n_closed, w->conns->len, ns_to_s (CLOSE_WAIT_NS));
      w->finished = TRUE;
    }
  ws_check_done (b, now);
}

static void
ws_start (Bench  *b,
          guint64 now)
{
  WsIngest *w = &b->ws;

  w->t_start = w->t_last = now;
  if (w->rate > 0)
    ws_pump (b, now);
  else
    for (guint i = 0; i < w->conns->len; i++)
      ws_fill (b, g_ptr_array_index (w->conns, i));
}

/* ---- operator subscription ------------------------------------------------- */

static void
sub_close (Bench  *b,
           guint64 now)
{
  Subscriber *s = &b->sub;

  if (s->closing)
    return;
  s->closing = TRUE;
  s->wait_deadline = now + CLOSE_WAIT_NS;
  conn_ws_close (b, s->conn);
}

static void
sub_check_done (Bench  *b,
                guint64 now)
{
  Subscriber *s = &b->sub;

  if (!s->active || s->finished || s->closing || !b->http.finished)
    return;
  s->expected = b->http.events_sent;
  if (s->received >= s->expected)
    sub_close (b, now);
  else if (s->wait_deadline == 0)
    s->wait_deadline = now + CLOSE_WAIT_NS;
}

static void bench_maybe_start (Bench *b);

static void
sub_message (Bench      *b,
             Conn       *c,
             const char *text,
             gsize       len)
{
  Subscriber *s = &b->sub;
  guint64     now = now_ns ();
  gint64      sent_ns;
  gint64      bench_seq;
  gint64      seq;

  if (memmem (text, len, "\"sentNs\"", 8) != NULL)
    {
      if (!fl_json_find_int (text, len, "sentNs", &sent_ns) || !fl_json_find_int (text, len, "benchSeq", &bench_seq))
        {
          bench_error (b, "subscription: an event without sentNs or benchSeq: %.*s",
                       (int) MIN (len, 300), text);
          return;
        }
      if (fl_json_find_int (text, len, "seq", &seq))
        {
          if (seq <= s->last_seq)
            {
              if (s->seq_errors++ < 5)
                bench_error (b, "subscription: seq %" G_GINT64_FORMAT " after %" G_GINT64_FORMAT " (must increase)", seq, s->last_seq);
            }
          s->last_seq = seq;
        }
      else if (s->seq_errors++ < 5)
        bench_error (b, "subscription: an event without seq: %.*s", (int) MIN (len, 300), text);

      if (bench_seq < 0 || (guint64) bench_seq >= b->http.total_events)
        {
          s->foreign++;
          return;
        }
      if (s->seen[bench_seq])
        {
          if (s->repeated++ < 5)
            bench_error (b, "subscription: event benchSeq %" G_GINT64_FORMAT " delivered twice", bench_seq);
          return;
        }
      s->seen[bench_seq] = 1;
      s->received++;
      if ((guint64) bench_seq >= s->warmup)
        {
          guint64 delay = now - (guint64) sent_ns;
          g_array_append_val (s->delays, delay);
        }
      sub_check_done (b, now);
      return;
    }

  {
    const char *type = NULL;
    gsize       type_len = 0;

    if (!fl_json_find_string (text, len, "type", &type, &type_len))
      {
        bench_error (b, "subscription: a message without a type: %.*s", (int) MIN (len, 200), text);
        return;
      }
    if (token_matches (type, type_len, "subscribed"))
      {
        s->subscribed = TRUE;
        bench_maybe_start (b);
      }
    else if (token_matches (type, type_len, "error"))
      bench_abort (b, "subscription: %.*s", (int) MIN (len, 300), text);
    else if (token_matches (type, type_len, "event"))
      s->foreign++;
    else
      s->other_msgs++;
  }
}

static void
sub_tick (Bench  *b,
          guint64 now)
{
  Subscriber *s = &b->sub;

  if (!s->active || s->finished || s->wait_deadline == 0 || now < s->wait_deadline)
    return;
  if (s->closing)
    {
      bench_error (b, "the operator WebSocket did not finish the closing handshake within %.0f s",
                   ns_to_s (CLOSE_WAIT_NS));
      s->finished = TRUE;
      return;
    }
  bench_error (b, "subscription: %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT " stored events never arrived (waited %.0f s after the last answer)",
               s->expected - s->received, s->expected, ns_to_s (CLOSE_WAIT_NS));
  sub_close (b, now);
}

/* ---- dispatch -------------------------------------------------------------- */

static void
bench_maybe_start (Bench *b)
{
  guint64 now;
  guint64 hwm = 0;

  if (b->started || b->n_opened < b->conns->len)
    return;
  if (b->sub.active && !b->sub.subscribed)
    return;
  now = now_ns ();
  b->started = TRUE;
  b->cpu_t0 = now;
  b->cpu_relay0 = proc_cpu_seconds (b->relay.pid);
  b->cpu_self0 = self_cpu_seconds ();
  b->cpu_system0 = system_busy_seconds ();
  proc_memory (b->relay.pid, &b->rss_last_kb, &hwm);
  if (b->http.active)
    http_start (b, now);
  if (b->ws.active)
    ws_start (b, now);
}

static void
bench_on_opened (Bench *b,
                 Conn  *c)
{
  switch (c->role)
    {
    case ROLE_REGISTER:
      register_fill (b, c);
      break;
    case ROLE_HTTP_INGEST:
      if (b->started)
        http_fill (b, c);
      break;
    case ROLE_WS_INGEST:
      if (b->started)
        ws_fill (b, c);
      break;
    case ROLE_SUBSCRIBER:
      {
        static const char subscribe[] = "{\"action\":\"subscribe_devices\",\"deviceIds\":[\"*\"]}";
        conn_send_ws (b, c, FL_WS_TEXT, subscribe, sizeof subscribe - 1, TRUE);
      }
      break;
    default:
      g_assert_not_reached ();
    }
  bench_maybe_start (b);
}

static void
bench_on_response (Bench                *b,
                   Conn                 *c,
                   const FlHttpResponse *r,
                   const InFlight       *req)
{
  switch (c->role)
    {
    case ROLE_REGISTER:
      register_response (b, c, r, req);
      break;
    case ROLE_HTTP_INGEST:
      http_response (b, c, r, req);
      break;
    default:
      g_assert_not_reached ();
    }
}

static void
bench_on_message (Bench      *b,
                  Conn       *c,
                  const char *text,
                  gsize       len)
{
  if (c->role == ROLE_WS_INGEST)
    ws_message (b, c, text, len);
  else
    sub_message (b, c, text, len);
}

static void
bench_on_closed (Bench *b,
                 Conn  *c)
{
  if (c->role == ROLE_WS_INGEST)
    {
      b->ws.n_closed++;
      ws_check_done (b, now_ns ());
    }
  else if (c->role == ROLE_SUBSCRIBER)
    {
      b->sub.closed = TRUE;
      b->sub.finished = TRUE;
    }
}

static void
housekeeping (Bench  *b,
              guint64 now)
{
  guint64 rss = 0;
  guint64 hwm = 0;

  b->next_housekeeping = now + 100 * NS_PER_MS;
  if (proc_memory (b->relay.pid, &rss, &hwm))
    {
      b->rss_last_kb = rss;
      b->rss_peak_kb = MAX (b->rss_peak_kb, rss);
      b->hwm_kb = hwm;
    }
  if (!relay_alive (&b->relay))
    {
      g_autofree char *what = describe_status (b->relay.wait_status);
      bench_abort (b, "the relay died: %s", what);
      return;
    }
  if (now - b->last_progress > STALL_NS)
    {
      bench_abort (b, "no progress for %.0f s: the relay stopped answering", ns_to_s (STALL_NS));
      return;
    }
  if (now > b->hard_limit)
    {
      bench_abort (b, "did not finish within %.0f s", ns_to_s (b->hard_limit - b->run_start));
      return;
    }
  if (now >= b->next_report)
    {
      b->next_report = now + 5 * NS_PER_S;
      if (b->reg.active)
        g_printerr ("  [%s] %u registered\n", b->run_name, b->reg.done);
      if (b->http.active && b->started)
        g_printerr ("  [%s] %" G_GUINT64_FORMAT " events accepted over HTTP, %.0f/s so far\n",
                    b->run_name, b->http.accepted,
                    (double) b->http.accepted / MAX (ns_to_s (now - b->http.t_start), 1e-3));
      if (b->ws.active && b->started)
        g_printerr ("  [%s] %" G_GUINT64_FORMAT " events acked over WebSockets, %.0f/s so far\n",
                    b->run_name, b->ws.accepted,
                    (double) b->ws.accepted / MAX (ns_to_s (now - b->ws.t_start), 1e-3));
      if (!b->started)
        g_printerr ("  [%s] %u of %u connections open\n", b->run_name, b->n_opened, b->conns->len);
    }
}

static void
bench_tick (Bench *b)
{
  guint64 now = now_ns ();

  http_tick (b, now);
  ws_tick (b, now);
  sub_tick (b, now);
  if (now >= b->next_housekeeping)
    housekeeping (b, now);
}

static gboolean
bench_all_finished (Bench *b)
{
  if (b->reg.active && !b->reg.finished)
    {
      gboolean idle = b->reg.next >= b->reg.to;

      for (guint i = 0; idle && i < b->conns->len; i++)
        if (((Conn *) g_ptr_array_index (b->conns, i))->q_len > 0)
          idle = FALSE;
      if (!idle)
        return FALSE;
      b->reg.finished = TRUE;
    }
  return (!b->http.active || b->http.finished) && (!b->ws.active || b->ws.finished) && (!b->sub.active || b->sub.finished);
}

/* ---- runs ---------------------------------------------------------------- */

static void
run_clear (Bench *b)
{
  g_clear_pointer (&b->http.latencies, g_array_unref);
  g_clear_pointer (&b->http.idle, g_ptr_array_unref);
  fl_buf_clear (&b->http.saved);
  g_clear_pointer (&b->ws.latencies, g_array_unref);
  g_clear_pointer (&b->ws.conns, g_ptr_array_unref);
  g_clear_pointer (&b->sub.seen, g_free);
  g_clear_pointer (&b->sub.delays, g_array_unref);
}

static void
run_reset (Bench      *b,
           const char *name)
{
  run_clear (b);
  memset (&b->reg, 0, sizeof b->reg);
  memset (&b->http, 0, sizeof b->http);
  memset (&b->ws, 0, sizeof b->ws);
  memset (&b->sub, 0, sizeof b->sub);
  b->http.latencies = g_array_new (FALSE, FALSE, sizeof (guint64));
  b->http.idle = g_ptr_array_new ();
  b->ws.latencies = g_array_new (FALSE, FALSE, sizeof (guint64));
  b->ws.conns = g_ptr_array_new ();
  b->sub.delays = g_array_new (FALSE, FALSE, sizeof (guint64));
  b->run_name = name;
  b->run_errors = 0;
  b->started = FALSE;
  b->aborted = FALSE;
  b->loop_done = FALSE;
  b->n_opened = 0;
  b->reconnects = 0;
  b->rss_peak_kb = 0;
}

typedef struct
{
  double wall_s;
  double relay_cores;
  double self_cores;
  double other_cores; /* everything else on the machine: noise */
} RunCpu;

static gboolean
engine_run (Bench  *b,
            guint64 tick_ns,
            guint64 limit_ns,
            RunCpu *cpu)
{
  struct itimerspec its = { { 0, (long) tick_ns }, { 0, (long) tick_ns } };
  struct itimerspec off = { { 0, 0 }, { 0, 0 } };
  guint64           now = now_ns ();
  guint64           end;

  b->run_start = now;
  b->soft_limit = now + limit_ns;
  b->hard_limit = b->soft_limit + 60 * NS_PER_S;
  b->last_progress = now;
  b->next_housekeeping = now;
  b->next_report = now + 5 * NS_PER_S;
  b->setup_pending = 0;

  conns_pump (b);
  timerfd_settime (b->tfd, 0, &its, NULL);
  while (!b->loop_done)
    {
      struct epoll_event events[256];
      int                n = epoll_wait (b->epfd, events, G_N_ELEMENTS (events), 1000);

      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          g_error ("epoll_wait: %s", g_strerror (errno));
        }
      for (int i = 0; i < n && !b->loop_done; i++)
        {
          if (events[i].data.ptr == NULL)
            {
              guint64 expirations;
              if (read (b->tfd, &expirations, sizeof expirations) < 0)
                {
                  /* EAGAIN: nothing to do */
                }
              bench_tick (b);
            }
          else
            conn_on_event (b, events[i].data.ptr, events[i].events);
        }
      if (n == 0)
        bench_tick (b);
      if (!b->loop_done && bench_all_finished (b))
        b->loop_done = TRUE;
    }
  timerfd_settime (b->tfd, 0, &off, NULL);

  end = now_ns ();
  if (cpu != NULL)
    {
      guint64 t0 = b->started ? b->cpu_t0 : b->run_start;
      double  relay0 = b->started ? b->cpu_relay0 : 0;
      double  self0 = b->started ? b->cpu_self0 : 0;

      cpu->wall_s = ns_to_s (end - t0);
      cpu->relay_cores = b->started ? (proc_cpu_seconds (b->relay.pid) - relay0) / MAX (cpu->wall_s, 1e-3) : 0;
      cpu->self_cores = b->started ? (self_cpu_seconds () - self0) / MAX (cpu->wall_s, 1e-3) : 0;
      cpu->other_cores = b->started ? (system_busy_seconds () - b->cpu_system0) / MAX (cpu->wall_s, 1e-3) - cpu->relay_cores - cpu->self_cores
                                    : 0;
      cpu->other_cores = MAX (cpu->other_cores, 0);
      if (cpu->other_cores > b->max_other_cores)
        {
          b->max_other_cores = cpu->other_cores;
          g_free (b->max_other_phase);
          b->max_other_phase = g_strdup (b->run_name);
        }
    }
  {
    guint64 rss = 0, hwm = 0;
    if (proc_memory (b->relay.pid, &rss, &hwm))
      {
        b->rss_last_kb = rss;
        b->rss_peak_kb = MAX (b->rss_peak_kb, rss);
        b->hwm_kb = hwm;
      }
  }

  g_ptr_array_set_size (b->conns, 0);
  g_queue_clear (&b->connect_queue);
  b->setup_pending = 0;
  return !b->aborted && b->run_errors == 0;
}

/* ---- blocking setup requests -------------------------------------------------- */

static gboolean
http_blocking (Bench      *b,
               const char *method,
               const char *path,
               const char *auth,
               const char *body,
               int        *status,
               char      **body_out,
               GError    **error)
{
  struct timeval tv = { 30, 0 };
  FlBuf          out = { 0 };
  FlBuf          in = { 0 };
  FlBuf          scratch = { 0 };
  gboolean       ok = FALSE;
  int            fd;

  fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt (fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect (fd, (struct sockaddr *) &b->addr, sizeof b->addr) < 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s %s: connect: %s",
                   method, path, g_strerror (errno));
      goto out;
    }
  fl_buf_append_printf (&out, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", method, path, b->host);
  if (auth != NULL)
    fl_buf_append_printf (&out, "Authorization: %s\r\n", auth);
  if (body != NULL)
    fl_buf_append_printf (&out, "Content-Type: application/json\r\nContent-Length: %" G_GSIZE_FORMAT "\r\n",
                          strlen (body));
  fl_buf_append_lit (&out, "\r\n");
  if (body != NULL)
    fl_buf_append_str (&out, body);
  while (fl_buf_pending (&out) > 0)
    {
      ssize_t n = send (fd, fl_buf_head (&out), fl_buf_pending (&out), MSG_NOSIGNAL);
      if (n <= 0)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s %s: send: %s",
                       method, path, g_strerror (errno));
          goto out;
        }
      fl_buf_consume (&out, (gsize) n);
    }
  for (;;)
    {
      FlHttpResponse r;
      FlParseStatus  st;
      char          *dest;
      ssize_t        n;

      st = fl_http_parse_response (fl_buf_head (&in), fl_buf_pending (&in), &scratch, &r, error);
      if (st == FL_PARSE_ERROR)
        goto out;
      if (st == FL_PARSE_DONE)
        {
          *status = r.status;
          *body_out = g_strndup (r.body, r.body_len);
          ok = TRUE;
          goto out;
        }
      dest = fl_buf_reserve (&in, 16 * 1024);
      n = recv (fd, dest, 16 * 1024, 0);
      if (n <= 0)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s %s: %s", method, path,
                       n == 0 ? "the relay closed the connection before answering" : g_strerror (errno));
          goto out;
        }
      in.len += (gsize) n;
    }

out:
  close (fd);
  fl_buf_clear (&out);
  fl_buf_clear (&in);
  fl_buf_clear (&scratch);
  return ok;
}

static JsonObject *
parse_object (const char *text,
              GError    **error)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonNode              *root;

  if (!json_parser_load_from_data (parser, text, -1, error))
    return NULL;
  root = json_parser_get_root (parser);
  if (!JSON_NODE_HOLDS_OBJECT (root))
    {
      g_set_error (error, FL_LOADGEN_ERROR, FL_LOADGEN_ERROR_BAD_ANSWER,
                   "not a JSON object: %.200s", text);
      return NULL;
    }
  return json_object_ref (json_node_get_object (root));
}

static gboolean
bench_login (Bench   *b,
             GError **error)
{
  g_autofree char       *body = NULL;
  g_autoptr (JsonObject) obj = NULL;
  const char            *token;
  int                    status = 0;

  if (!http_blocking (b, "POST", "/auth/login", NULL,
                      "{\"username\":\"" BENCH_USER "\",\"password\":\"" BENCH_PASSWORD "\"}",
                      &status, &body, error))
    return FALSE;
  if (status != 200)
    {
      g_set_error (error, FL_LOADGEN_ERROR, FL_LOADGEN_ERROR_BAD_ANSWER,
                   "POST /auth/login: HTTP %d: %.300s", status, body);
      return FALSE;
    }
  if ((obj = parse_object (body, error)) == NULL)
    return FALSE;
  token = json_object_get_string_member_with_default (obj, "accessToken", NULL);
  if (token == NULL)
    token = json_object_get_string_member_with_default (obj, "idToken", NULL);
  if (token == NULL)
    {
      g_set_error (error, FL_LOADGEN_ERROR, FL_LOADGEN_ERROR_BAD_ANSWER,
                   "POST /auth/login: no accessToken in the answer");
      return FALSE;
    }
  b->token = g_strdup (token);
  b->bearer = g_strdup_printf ("Bearer %s", token);
  if (json_object_has_member (obj, "expiresIn") && json_object_get_int_member (obj, "expiresIn") < 1200)
    g_printerr ("loadgen: note: tokens expire in %" G_GINT64_FORMAT " s; a full run takes up to ~15 min\n",
                json_object_get_int_member (obj, "expiresIn"));
  return TRUE;
}

static gboolean
bench_events_total (Bench   *b,
                    gint64  *total,
                    GError **error)
{
  g_autofree char       *body = NULL;
  g_autoptr (JsonObject) obj = NULL;
  JsonNode              *node;
  int                    status = 0;

  if (!http_blocking (b, "GET", "/metrics", b->bearer, NULL, &status, &body, error))
    return FALSE;
  if (status != 200)
    {
      g_set_error (error, FL_LOADGEN_ERROR, FL_LOADGEN_ERROR_BAD_ANSWER,
                   "GET /metrics: HTTP %d: %.300s", status, body);
      return FALSE;
    }
  if ((obj = parse_object (body, error)) == NULL)
    return FALSE;
  node = json_object_get_member (obj, "eventsTotal");
  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node) || (json_node_get_value_type (node) != G_TYPE_INT64 && json_node_get_value_type (node) != G_TYPE_DOUBLE))
    {
      g_set_error (error, FL_LOADGEN_ERROR, FL_LOADGEN_ERROR_BAD_ANSWER,
                   "GET /metrics: no numeric eventsTotal in %.300s", body);
      return FALSE;
    }
  *total = json_node_get_value_type (node) == G_TYPE_INT64 ? json_node_get_int (node)
                                                           : (gint64) json_node_get_double (node);
  return TRUE;
}

/* ---- phases ---------------------------------------------------------------- */

static guint64
phase_limit (Bench *b)
{
  return (b->quick ? 45 : 150) * NS_PER_S;
}

static void
record_failure (Bench      *b,
                const char *format,
                ...) G_GNUC_PRINTF (2, 3);

static void
record_failure (Bench      *b,
                const char *format,
                ...)
{
  va_list args;
  char   *msg;

  va_start (args, format);
  msg = g_strdup_vprintf (format, args);
  va_end (args);
  g_printerr ("FAILED: %s\n", msg);
  g_ptr_array_add (b->failures, msg);
}

/* Checks GET /metrics against what was accepted so far, and prints the
 * relay's state after a phase */
static gboolean
phase_finish (Bench      *b,
              const char *name,
              gboolean    ok,
              guint64     accepted,
              guint64     sent)
{
  g_autoptr (GError) error = NULL;
  gint64             total = -1;
  gboolean           metrics_ok = TRUE;

  if (!ok)
    record_failure (b, "%s: %u error(s)%s", name, b->run_errors,
                    b->aborted ? ", phase aborted" : "");
  if (ok && accepted != sent)
    {
      record_failure (b, "%s: %" G_GUINT64_FORMAT " events sent, %" G_GUINT64_FORMAT " accepted",
                      name, sent, accepted);
      ok = FALSE;
    }
  b->events_expected += (gint64) accepted;

  if (!relay_alive (&b->relay))
    return FALSE;

  /* the answers come after commit, so the counter should already agree;
   * allow it a moment in case the relay updates it asynchronously */
  for (guint attempt = 0; attempt < 20; attempt++)
    {
      g_clear_error (&error);
      if (!bench_events_total (b, &total, &error))
        break;
      if (total - b->events_base == b->events_expected)
        break;
      g_usleep (100 * 1000);
    }
  if (error != NULL)
    {
      record_failure (b, "%s: %s", name, error->message);
      ok = FALSE;
    }
  else if (total - b->events_base != b->events_expected)
    {
      gint64 grew = total - b->events_base - (b->events_expected - (gint64) accepted);

      record_failure (b, "%s: GET /metrics eventsTotal grew by %" G_GINT64_FORMAT " in this phase, but %" G_GUINT64_FORMAT " events were accepted",
                      name, grew, accepted);
      ok = FALSE;
      /* compare later phases against what the relay says now */
      b->events_base = total - b->events_expected;
      metrics_ok = FALSE;
    }
  g_print ("%s-relay: eventsTotal %" G_GINT64_FORMAT " (%s), VmRSS %.1f MB, %u open fds, %u CLOSE-WAIT sockets\n",
           name, total, error == NULL && metrics_ok ? "matches the accepted count" : "MISMATCH",
           b->rss_last_kb / 1024.0, proc_fd_count (b->relay.pid), close_wait_count (b->relay.port));
  return ok;
}

static void
print_cpu (const char   *name,
           const RunCpu *cpu)
{
  g_print ("%s-cpu: relay %.2f cores, loadgen %.2f cores, other processes %.2f cores (over %.1f s)\n",
           name, cpu->relay_cores, cpu->self_cores, cpu->other_cores, cpu->wall_s);
}

static void
print_latency (const char *name,
               const char *what,
               GArray     *samples)
{
  guint64 *v = (guint64 *) samples->data;
  gsize    n = samples->len;

  fl_sort_u64 (v, n);
  g_print ("%s-latency: p50 %.2f ms, p99 %.2f ms, max %.2f ms (%" G_GSIZE_FORMAT " %s)\n",
           name, ns_to_ms (fl_percentile (v, n, 50)), ns_to_ms (fl_percentile (v, n, 99)),
           ns_to_ms (n ? v[n - 1] : 0), n, what);
}

static gboolean
register_devices (Bench *b,
                  guint  from,
                  guint  to)
{
  RunCpu   cpu;
  gboolean ok;
  guint    conns = 16;
  guint64  t0;
  double   secs;

  run_reset (b, "register");
  b->reg.active = TRUE;
  b->reg.next = from;
  b->reg.to = to;
  for (guint i = 0; i < conns; i++)
    conn_new (b, KIND_HTTP, ROLE_REGISTER, NULL, NULL, 0);
  t0 = now_ns ();
  ok = engine_run (b, 10 * NS_PER_MS, (b->quick ? 60 : 300) * NS_PER_S, &cpu);
  secs = ns_to_s (now_ns () - t0);
  g_print ("register: %u devices in %.2f s (%.0f/s, %u connections)\n",
           b->reg.done, secs, b->reg.done / MAX (secs, 1e-3), conns);
  if (!ok || b->reg.done != to - from)
    {
      record_failure (b, "register: %u of %u devices registered (%u errors)",
                      b->reg.done, to - from, b->run_errors);
      return FALSE;
    }
  b->n_registered = MAX (b->n_registered, to);
  return TRUE;
}

static void
add_ws_device_conns (Bench *b,
                     guint  first,
                     guint  count)
{
  for (guint i = first; i < first + count; i++)
    {
      Conn *c = conn_new (b, KIND_WS, ROLE_WS_INGEST, "/device", b->devices[i].basic, i);
      g_ptr_array_add (b->ws.conns, c);
    }
}

static gboolean
phase_http_batch (Bench *b)
{
  const char *name = "http-batch";
  HttpIngest *h = &b->http;
  guint       conns = b->quick ? 16 : 64;
  RunCpu      cpu;
  gboolean    ok;
  double      secs, rate;

  run_reset (b, name);
  h->active = TRUE;
  h->per_request = 100;
  h->total_events = b->quick ? 50000 : 3000000;
  h->record_latency = TRUE;
  h->dup_check = TRUE;
  h->dev_first = 0;
  h->dev_count = b->n_devices;
  for (guint i = 0; i < conns; i++)
    conn_new (b, KIND_HTTP, ROLE_HTTP_INGEST, NULL, NULL, 0);
  ok = engine_run (b, 10 * NS_PER_MS, phase_limit (b), &cpu);

  secs = ns_to_s (h->t_last - h->t_start);
  rate = (double) h->accepted / MAX (secs, 1e-3);
  g_print ("%s: %.0f events/s (%" G_GUINT64_FORMAT " events, %u/request, %u connections, %u devices%s)\n",
           name, rate, h->accepted, h->per_request, conns, h->dev_count,
           h->time_limited ? "; stopped at the time limit" : "");
  print_latency (name, "requests of 100 events", h->latencies);
  print_cpu (name, &cpu);
  add_figure (b, "http-batch", rate, "events/s", 100000, TRUE);
  /* the resent batch adds nothing */
  return phase_finish (b, name, ok, h->accepted, h->events_sent);
}

static gboolean
phase_ws_ingest (Bench *b)
{
  const char *name = "ws-ingest";
  WsIngest   *w = &b->ws;
  RunCpu      cpu;
  gboolean    ok;
  double      secs, rate;
  guint64     t0;

  run_reset (b, name);
  w->active = TRUE;
  w->per_msg = 50;
  w->depth = 4;
  w->total_events = b->quick ? 50000 : 3000000;
  w->dev_first = 0;
  w->dev_count = b->n_devices;
  add_ws_device_conns (b, 0, b->n_devices);
  t0 = now_ns ();
  ok = engine_run (b, 10 * NS_PER_MS, phase_limit (b), &cpu);

  if (b->started)
    g_print ("%s-connect: %u device WebSockets open in %.2f s (%.0f/s)\n", name, w->conns->len,
             ns_to_s (b->cpu_t0 - t0), w->conns->len / MAX (ns_to_s (b->cpu_t0 - t0), 1e-3));
  secs = ns_to_s (w->t_last - w->t_start);
  rate = (double) w->accepted / MAX (secs, 1e-3);
  g_print ("%s: %.0f events/s (%" G_GUINT64_FORMAT " events, %u/message, %u in flight per connection, "
           "%u device connections%s)\n",
           name, rate, w->accepted, w->per_msg, w->depth, w->conns->len,
           w->time_limited ? "; stopped at the time limit" : "");
  print_latency (name, "acks of 50-event messages", w->latencies);
  print_cpu (name, &cpu);
  add_figure (b, "ws-ingest", rate, "events/s", 100000, TRUE);
  return phase_finish (b, name, ok, w->accepted, w->events_sent);
}

static gboolean
phase_http_single (Bench *b)
{
  const char *name = "http-single";
  HttpIngest *h = &b->http;
  guint       conns = b->quick ? 32 : 128;
  RunCpu      cpu;
  gboolean    ok;
  double      secs, rate;
  guint64    *v;

  run_reset (b, name);
  h->active = TRUE;
  h->per_request = 1;
  h->single_object = TRUE;
  h->duration_ns = (b->quick ? 3 : 20) * NS_PER_S;
  h->record_latency = TRUE;
  h->dev_first = 0;
  h->dev_count = b->n_devices;
  for (guint i = 0; i < conns; i++)
    conn_new (b, KIND_HTTP, ROLE_HTTP_INGEST, NULL, NULL, 0);
  ok = engine_run (b, 10 * NS_PER_MS, phase_limit (b), &cpu);

  secs = ns_to_s (h->t_last - h->t_start);
  rate = (double) h->requests_done / MAX (secs, 1e-3);
  v = (guint64 *) h->latencies->data;
  fl_sort_u64 (v, h->latencies->len);
  g_print ("%s: %.0f requests/s (%" G_GUINT64_FORMAT " requests of 1 event, %u connections, %u devices, %.1f s)\n",
           name, rate, h->requests_done, conns, h->dev_count, secs);
  print_latency (name, "requests", h->latencies);
  print_cpu (name, &cpu);
  add_figure (b, "http-single", rate, "requests/s", 10000, TRUE);
  add_figure (b, "http-single p99", ns_to_ms (fl_percentile (v, h->latencies->len, 99)), "ms", -1, FALSE);
  return phase_finish (b, name, ok, h->accepted, h->events_sent);
}

static gboolean
phase_latency (Bench *b)
{
  const char      *name = "latency";
  HttpIngest      *h = &b->http;
  Subscriber      *s = &b->sub;
  guint            conns = 32;
  guint            batch = 10;
  double           rate = 10000;
  guint64          warmup = b->quick ? 2000 : 20000;
  guint64          measured = b->quick ? 10000 : 100000;
  g_autofree char *token = NULL;
  g_autofree char *path = NULL;
  RunCpu           cpu;
  gboolean         ok;
  guint64         *v;
  gsize            n;

  run_reset (b, name);
  h->active = TRUE;
  h->per_request = batch;
  h->rate = rate;
  h->stamp = TRUE;
  h->record_latency = TRUE;
  h->total_events = warmup + measured;
  h->dev_first = 0;
  h->dev_count = b->n_devices;
  s->active = TRUE;
  s->warmup = warmup;
  s->last_seq = G_MININT64;
  s->seen = g_malloc0 (h->total_events);

  token = g_uri_escape_string (b->token, NULL, FALSE);
  path = g_strdup_printf ("/events?token=%s", token);
  s->conn = conn_new (b, KIND_WS, ROLE_SUBSCRIBER, path, NULL, 0);
  for (guint i = 0; i < conns; i++)
    conn_new (b, KIND_HTTP, ROLE_HTTP_INGEST, NULL, NULL, 0);
  ok = engine_run (b, NS_PER_MS, phase_limit (b), &cpu);

  v = (guint64 *) s->delays->data;
  n = s->delays->len;
  fl_sort_u64 (v, n);
  g_print ("%s: p50 %.2f ms, p99 %.2f ms, max %.2f ms, ingest to operator WebSocket "
           "(%" G_GSIZE_FORMAT " events after %" G_GUINT64_FORMAT " warm-up; paced %.0f events/s, "
           "%u/request over %u HTTP connections, %u devices)\n",
           name, ns_to_ms (fl_percentile (v, n, 50)), ns_to_ms (fl_percentile (v, n, 99)),
           ns_to_ms (n ? v[n - 1] : 0), n, warmup, rate, batch, conns, h->dev_count);
  print_latency ("latency-http", "POST /ingest answers", h->latencies);
  g_print ("%s-pacing: at most %" G_GUINT64_FORMAT " events behind schedule; %" G_GUINT64_FORMAT
           " received, %" G_GUINT64_FORMAT " missing, %" G_GUINT64_FORMAT " duplicated, "
           "%" G_GUINT64_FORMAT " other messages\n",
           name, h->max_lag, s->received, s->expected > s->received ? s->expected - s->received : 0,
           s->repeated, s->other_msgs);
  print_cpu (name, &cpu);
  add_figure (b, "latency p50", ns_to_ms (fl_percentile (v, n, 50)), "ms", 2, FALSE);
  add_figure (b, "latency p99", ns_to_ms (fl_percentile (v, n, 99)), "ms", 10, FALSE);
  if (n < measured && ok)
    {
      record_failure (b, "%s: only %" G_GSIZE_FORMAT " of %" G_GUINT64_FORMAT " measured events arrived",
                      name, n, measured);
      ok = FALSE;
    }
  return phase_finish (b, name, ok, h->accepted, h->events_sent);
}

static void bench_set_port (Bench *b);

/* Restarts the relay on the same data directory, so the memory figures of
 * the rss phase are not inflated by what earlier phases left in its heap;
 * measures the clean exit and the cold start on a full store on the way */
static gboolean
restart_relay (Bench *b)
{
  g_autoptr (GError) error = NULL;
  guint64            t0 = now_ns ();
  double             stop_ms;
  gint64             total = 0;

  if (!relay_stop (&b->relay, &error))
    {
      record_failure (b, "rss: restarting the relay: %s", error->message);
      return FALSE;
    }
  stop_ms = ns_to_ms (now_ns () - t0);
  t0 = now_ns ();
  if (!relay_start (&b->relay, b->envp, &error))
    {
      record_failure (b, "rss: restarting the relay: %s", error->message);
      return FALSE;
    }
  g_print ("rss-restart: SIGTERM to exit 0 in %.0f ms; listening again after %.0f ms with %" G_GINT64_FORMAT " events stored (pid %d, port %d)\n",
           stop_ms, ns_to_ms (now_ns () - t0), b->events_expected, (int) b->relay.pid, b->relay.port);
  bench_set_port (b);
  g_clear_pointer (&b->token, g_free);
  g_clear_pointer (&b->bearer, g_free);
  if (!bench_login (b, &error) || !bench_events_total (b, &total, &error))
    {
      record_failure (b, "rss: after the restart: %s", error->message);
      return FALSE;
    }
  /* eventsTotal may count the store or only this process: check deltas */
  g_print ("rss-restart-metrics: eventsTotal %" G_GINT64_FORMAT " after the restart (%s)\n", total,
           total - b->events_base == b->events_expected ? "the stored count" : "not the stored count");
  b->events_base = total - b->events_expected;
  for (guint i = 0; i < b->n_registered; i++)
    device_set_secret (b, &b->devices[i], b->devices[i].secret);
  return TRUE;
}

static gboolean
phase_rss (Bench *b)
{
  guint    n = b->rss_devices;
  double   rate = b->quick ? 2000 : 10000;
  guint64  duration = (b->quick ? 3 : 20) * NS_PER_S;
  gboolean all_ok = TRUE;
  gboolean ok;
  RunCpu   cpu;
  guint64  before_kb = 0, hwm = 0;
  guint64  t0;
  guint    http_conns = 64;

  if (b->phases_run > 1 && !restart_relay (b))
    return FALSE;
  if (b->n_registered < n && !register_devices (b, b->n_registered, n))
    return FALSE;
  proc_memory (b->relay.pid, &before_kb, &hwm);
  g_print ("rss-before: VmRSS %.1f MB, VmHWM %.1f MB (%u devices registered)\n",
           before_kb / 1024.0, hwm / 1024.0, b->n_registered);

  /* the devices over a pool of keep-alive connections first: it should
   * need less memory, so its peak is not hidden by the WebSocket one */
  run_reset (b, "rss-http");
  b->http.active = TRUE;
  b->http.per_request = 1;
  b->http.single_object = TRUE;
  b->http.rate = rate;
  b->http.duration_ns = duration;
  b->http.record_latency = TRUE;
  b->http.dev_first = 0;
  b->http.dev_count = n;
  for (guint i = 0; i < http_conns; i++)
    conn_new (b, KIND_HTTP, ROLE_HTTP_INGEST, NULL, NULL, 0);
  ok = engine_run (b, NS_PER_MS, phase_limit (b), &cpu);
  g_print ("rss-http: peak VmRSS %.1f MB, VmHWM %.1f MB (%u devices over %u HTTP connections, %" G_GUINT64_FORMAT " events in %.1f s = %.0f requests/s of %.0f paced, 1 event/request)\n",
           b->rss_peak_kb / 1024.0, b->hwm_kb / 1024.0, n, http_conns, b->http.accepted,
           ns_to_s (b->http.t_last - b->http.t_start),
           b->http.accepted / MAX (ns_to_s (b->http.t_last - b->http.t_start), 1e-3), rate);
  print_latency ("rss-http", "requests", b->http.latencies);
  print_cpu ("rss-http", &cpu);
  {
    g_autofree char *label = g_strdup_printf ("rss, %u devices over HTTP", n);
    add_figure (b, label, b->rss_peak_kb / 1024.0, "MB", 64, FALSE);
  }
  all_ok &= phase_finish (b, "rss-http", ok, b->http.accepted, b->http.events_sent);
  if (!relay_alive (&b->relay))
    return FALSE;

  /* every device on its own WebSocket */
  run_reset (b, "rss-ws");
  b->ws.active = TRUE;
  b->ws.per_msg = 1;
  b->ws.single_object = TRUE;
  b->ws.depth = 4;
  b->ws.rate = rate;
  b->ws.duration_ns = duration;
  b->ws.dev_first = 0;
  b->ws.dev_count = n;
  add_ws_device_conns (b, 0, n);
  t0 = now_ns ();
  /* connecting thousands of WebSockets may take minutes: give it room
   * before the streaming part's own limit */
  ok = engine_run (b, NS_PER_MS, phase_limit (b) + (b->quick ? 30 : 180) * NS_PER_S, &cpu);
  if (b->started)
    add_figure (b, "rss-ws connect time", ns_to_s (b->cpu_t0 - t0), "s", -1, FALSE);
  if (b->started)
    g_print ("rss-ws-connect: %u device WebSockets open in %.2f s (%.0f/s, %u at a time); VmRSS then %.1f MB\n",
             n, ns_to_s (b->cpu_t0 - t0), n / MAX (ns_to_s (b->cpu_t0 - t0), 1e-3), b->max_setup,
             b->rss_last_kb / 1024.0);
  g_print ("rss-ws: peak VmRSS %.1f MB, VmHWM %.1f MB (%u device WebSockets, %" G_GUINT64_FORMAT
           " events in %.1f s = %.0f events/s of %.0f paced, 1 event/message)\n",
           b->rss_peak_kb / 1024.0, b->hwm_kb / 1024.0, n, b->ws.accepted,
           ns_to_s (b->ws.t_last - b->ws.t_start),
           b->ws.accepted / MAX (ns_to_s (b->ws.t_last - b->ws.t_start), 1e-3), rate);
  print_latency ("rss-ws", "acks", b->ws.latencies);
  print_cpu ("rss-ws", &cpu);
  {
    g_autofree char *label = g_strdup_printf ("rss, %u device WebSockets", n);
    add_figure (b, label, b->rss_peak_kb / 1024.0, "MB", 64, FALSE);
  }
  all_ok &= phase_finish (b, "rss-ws", ok, b->ws.accepted, b->ws.events_sent);
  return all_ok;
}

/* ---- setup ----------------------------------------------------------------- */

static void
print_machine (void)
{
  g_autofree char *cpuinfo = read_text_file ("/proc/cpuinfo");
  g_autofree char *meminfo = read_text_file ("/proc/meminfo");
  g_autofree char *model = NULL;
  guint64          mem_kb = 0;
  struct utsname   u;
  const char      *p;

  if (cpuinfo != NULL && (p = strstr (cpuinfo, "model name")) != NULL && (p = strchr (p, ':')) != NULL)
    {
      const char *end = strchr (p, '\n');
      model = g_strstrip (g_strndup (p + 1, end ? (gsize) (end - p - 1) : strlen (p + 1)));
    }
  if (meminfo != NULL && (p = strstr (meminfo, "MemTotal:")) != NULL)
    mem_kb = g_ascii_strtoull (p + 9, NULL, 10);
  uname (&u);
  g_print ("machine: nproc %ld, %s, %.1f GiB RAM, %s %s\n",
           sysconf (_SC_NPROCESSORS_ONLN), model ? model : "unknown CPU",
           mem_kb / 1048576.0, u.sysname, u.release);
}

static void
raise_fd_limit (void)
{
  struct rlimit rl;

  if (getrlimit (RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max)
    {
      rl.rlim_cur = rl.rlim_max;
      if (setrlimit (RLIMIT_NOFILE, &rl) < 0)
        g_printerr ("loadgen: setrlimit: %s\n", g_strerror (errno));
    }
  getrlimit (RLIMIT_NOFILE, &rl);
  g_print ("fd-limit: %lu\n", (unsigned long) rl.rlim_cur);
}

static int
remove_entry (const char        *path,
              const struct stat *st,
              int                flag,
              struct FTW        *ftw)
{
  remove (path);
  return 0;
}

static guint64 dir_bytes;

static int
add_entry_size (const char        *path,
                const struct stat *st,
                int                flag,
                struct FTW        *ftw)
{
  if (flag == FTW_F)
    dir_bytes += (guint64) st->st_size;
  return 0;
}

static void
bench_set_port (Bench *b)
{
  g_free (b->host);
  b->host = g_strdup_printf ("127.0.0.1:%d", b->relay.port);
  b->addr.sin_family = AF_INET;
  b->addr.sin_port = htons ((guint16) b->relay.port);
  b->addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
}

static const char *const all_phases[] = { "http-batch", "ws-ingest", "http-single", "latency", "rss", NULL };

static void
print_summary (Bench *b)
{
  g_print ("\n== summary: relay + load generator together on this machine ==\n");
  for (guint i = 0; i < b->figures->len; i++)
    {
      Figure          *f = &g_array_index (b->figures, Figure, i);
      const char      *verdict;
      g_autofree char *target = NULL;

      if (f->target < 0)
        {
          verdict = "";
          target = g_strdup ("");
        }
      else
        {
          gboolean met = f->at_least ? f->value >= f->target : f->value <= f->target;
          verdict = met ? "met" : "MISSED";
          target = g_strdup_printf ("target %s %g %s", f->at_least ? ">=" : "<=", f->target, f->unit);
        }
      g_print ("  %-30s %12.*f %-11s %-26s %s\n", f->label, f->value >= 100 ? 0 : 2, f->value,
               f->unit, target, verdict);
    }
  if (b->max_other_cores >= 0.25)
    g_print ("  WARNING: other processes used up to %.2f cores (in %s): the machine was not quiet, "
             "so these figures understate the relay\n",
             b->max_other_cores, b->max_other_phase);
  if (b->failures->len == 0)
    g_print ("  functional checks: ok (every event accepted once, counts match GET /metrics, clean exit)\n");
  else
    {
      g_print ("  functional checks: FAILED\n");
      for (guint i = 0; i < b->failures->len; i++)
        g_print ("    - %s\n", (const char *) g_ptr_array_index (b->failures, i));
    }
}

int
main (int    argc,
      char **argv)
{
  g_autofree char *relay_path = NULL;
  g_autofree char *phase_arg = NULL;
  gboolean         quick = FALSE;
  gboolean         keep_data = FALSE;
  gboolean         self_test = FALSE;
  gboolean         verbose = FALSE;
  int              devices = 1000;
  int              rss_devices = 0;
  int              max_setup = 8;
  GOptionEntry     entries[] = {
        { "relay", 0, 0, G_OPTION_ARG_FILENAME, &relay_path, "The fieldline-relay to run (required)", "PATH" },
        { "quick", 0, 0, G_OPTION_ARG_NONE, &quick, "A short smoke run (about a minute)", NULL },
        { "phase", 0, 0, G_OPTION_ARG_STRING, &phase_arg, "Run only these phases (comma-separated): http-batch, ws-ingest, http-single, latency, rss", "NAME" },
        { "devices", 0, 0, G_OPTION_ARG_INT, &devices, "Devices interleaved in the ingest phases (default 1000)", "N" },
        { "rss-devices", 0, 0, G_OPTION_ARG_INT, &rss_devices, "Devices connected at once in the rss phase (default 10000; 1000 with --quick)", "N" },
        { "max-connecting", 0, 0, G_OPTION_ARG_INT, &max_setup, "Connections opened at once (default 8: GLib's default listen backlog is 10)", "N" },
        { "keep-data", 0, 0, G_OPTION_ARG_NONE, &keep_data, "Keep the relay's data directory", NULL },
        { "verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose, "Show all of the relay's output", NULL },
        { "self-test", 0, 0, G_OPTION_ARG_NONE, &self_test, "Check the framing and parsing code, then exit", NULL },
        { NULL }
  };
  g_autoptr (GOptionContext) context = g_option_context_new ("- load generator for fieldline-relay");
  g_autoptr (GError)         error = NULL;
  g_auto (GStrv)             phases = NULL;
  Bench                      bench = { 0 };
  Bench                     *b = &bench;
  struct epoll_event         tev = { 0 };
  gboolean                   relay_ok;
  guint64                    t0;
  int                        status = 0;

  g_option_context_add_main_entries (context, entries, NULL);
  g_option_context_set_ignore_unknown_options (context, self_test);
  for (int i = 1; i < argc; i++)
    if (g_str_equal (argv[i], "--self-test"))
      return fl_loadgen_self_test (argc, argv);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("fl-loadgen: %s\n", error->message);
      return 2;
    }
  if (relay_path == NULL || !g_file_test (relay_path, G_FILE_TEST_IS_EXECUTABLE))
    {
      g_printerr ("fl-loadgen: --relay PATH must name the fieldline-relay executable\n");
      return 2;
    }
  if (devices < 1 || devices > 100000 || rss_devices < 0 || rss_devices > 100000)
    {
      g_printerr ("fl-loadgen: --devices and --rss-devices take 1..100000\n");
      return 2;
    }
  phases = g_strsplit (phase_arg ? phase_arg : "http-batch,ws-ingest,http-single,latency,rss", ",", 0);
  for (guint i = 0; phases[i] != NULL; i++)
    if (!g_strv_contains (all_phases, g_strstrip (phases[i])))
      {
        g_printerr ("fl-loadgen: unknown phase \"%s\"\n", phases[i]);
        return 2;
      }

  signal (SIGPIPE, SIG_IGN);
  setvbuf (stdout, NULL, _IOLBF, 0);

  b->quick = quick;
  b->max_setup = (guint) CLAMP (max_setup, 1, 4096);
  b->verbose = verbose;
  b->n_devices = (guint) devices;
  b->rss_devices = rss_devices > 0 ? (guint) rss_devices : (quick ? 1000 : 10000);
  b->devices_cap = MAX (b->n_devices, g_strv_contains ((const char *const *) phases, "rss") ? b->rss_devices : 0);
  b->devices = g_new0 (Device, b->devices_cap);
  b->conns = g_ptr_array_new_with_free_func (conn_free);
  g_queue_init (&b->connect_queue);
  b->figures = g_array_new (FALSE, TRUE, sizeof (Figure));
  b->failures = g_ptr_array_new_with_free_func (g_free);
  fl_rng_seed (&b->rng, (guint64) g_get_real_time () ^ ((guint64) getpid () << 32));
  for (guint i = 0; i < b->devices_cap; i++)
    device_init (b, i);

  g_print ("fl-loadgen %s%s\n", PACKAGE_VERSION, quick ? " (--quick)" : "");
  print_machine ();
  {
    g_autofree char *loadavg = read_text_file ("/proc/loadavg");
    if (loadavg != NULL)
      g_print ("loadavg: %s", loadavg);
  }
  raise_fd_limit ();

  b->epfd = epoll_create1 (EPOLL_CLOEXEC);
  b->tfd = timerfd_create (CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  tev.events = EPOLLIN;
  tev.data.ptr = NULL;
  epoll_ctl (b->epfd, EPOLL_CTL_ADD, b->tfd, &tev);

  /* the relay */
  b->relay.exe = g_canonicalize_filename (relay_path, NULL);
  b->relay.verbose = verbose;
  g_mutex_init (&b->relay.lock);
  g_cond_init (&b->relay.cond);
  b->relay.data_dir = g_dir_make_tmp ("fl-loadgen-XXXXXX", &error);
  if (b->relay.data_dir == NULL)
    {
      g_printerr ("fl-loadgen: %s\n", error->message);
      return 1;
    }
  b->envp = relay_environment (quick);
  if (!quick)
    g_print ("relay-env: G_SLICE, G_DEBUG, MALLOC_CHECK_ and MALLOC_PERTURB_ removed (run as in production)\n");

  t0 = now_ns ();
  if (!relay_add_user (&b->relay, b->envp, &error))
    {
      record_failure (b, "setup: %s", error->message);
      goto done;
    }
  g_print ("setup-users-add: %.2f s\n", ns_to_s (now_ns () - t0));
  t0 = now_ns ();
  if (!relay_start (&b->relay, b->envp, &error))
    {
      record_failure (b, "setup: %s", error->message);
      goto done;
    }
  g_print ("setup-relay-start: listening after %.0f ms (pid %d, port %d)\n",
           ns_to_ms (now_ns () - t0), (int) b->relay.pid, b->relay.port);

  bench_set_port (b);

  t0 = now_ns ();
  if (!bench_login (b, &error))
    {
      record_failure (b, "setup: %s", error->message);
      goto done;
    }
  g_print ("setup-login: %.1f ms\n", ns_to_ms (now_ns () - t0));
  g_mutex_lock (&b->relay.lock);
  g_print ("setup-relay-ids: user pool %s, app client %s\n",
           b->relay.pool_id ? b->relay.pool_id : "(not printed)",
           b->relay.client_id ? b->relay.client_id : "(not printed)");
  g_mutex_unlock (&b->relay.lock);
  if (!bench_events_total (b, &b->events_base, &error))
    {
      record_failure (b, "setup: %s", error->message);
      goto done;
    }
  if (b->events_base != 0)
    record_failure (b, "setup: GET /metrics eventsTotal is %" G_GINT64_FORMAT " on an empty store",
                    b->events_base);

  if (!register_devices (b, 0, b->n_devices))
    goto done;

  for (guint i = 0; phases[i] != NULL; i++)
    {
      const char *phase = phases[i];

      if (!relay_alive (&b->relay))
        break;
      g_print ("\n== %s ==\n", phase);
      b->phases_run++;
      if (g_str_equal (phase, "http-batch"))
        phase_http_batch (b);
      else if (g_str_equal (phase, "ws-ingest"))
        phase_ws_ingest (b);
      else if (g_str_equal (phase, "http-single"))
        phase_http_single (b);
      else if (g_str_equal (phase, "latency"))
        phase_latency (b);
      else if (g_str_equal (phase, "rss"))
        phase_rss (b);
    }

done:
  if (b->relay.pid > 0)
    {
      guint64 rss = 0, hwm = 0;

      if (proc_memory (b->relay.pid, &rss, &hwm))
        g_print ("\nrelay-hwm: VmHWM %.1f MB over the whole run\n", hwm / 1024.0);
      if (proc_memory (getpid (), &rss, &hwm))
        g_print ("loadgen-hwm: VmHWM %.1f MB\n", hwm / 1024.0);
      t0 = now_ns ();
      relay_ok = relay_alive (&b->relay);
      if (!relay_ok)
        {
          g_autofree char *what = describe_status (b->relay.wait_status);
          record_failure (b, "the relay died during the run: %s", what);
          if (b->relay.drain != NULL)
            g_thread_join (g_steal_pointer (&b->relay.drain));
        }
      else if (!relay_stop (&b->relay, &error))
        record_failure (b, "shutdown: %s", error->message);
      else
        g_print ("relay-shutdown: SIGTERM to exit 0 in %.0f ms\n", ns_to_ms (now_ns () - t0));
    }

  if (b->relay.data_dir != NULL)
    {
      dir_bytes = 0;
      nftw (b->relay.data_dir, add_entry_size, 16, FTW_PHYS);
      if (b->events_expected > 0)
        g_print ("store-size: %.1f MB for %" G_GINT64_FORMAT " events (%.0f bytes/event)\n",
                 dir_bytes / 1048576.0, b->events_expected, (double) dir_bytes / (double) b->events_expected);
      if (keep_data)
        g_print ("data-dir: %s (kept)\n", b->relay.data_dir);
      else
        nftw (b->relay.data_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    }

  print_summary (b);
  status = b->failures->len > 0 ? 1 : 0;

  /* no teardown of the rest: the process exits */
  run_clear (b);
  g_ptr_array_unref (b->conns);
  g_ptr_array_unref (b->failures);
  for (guint i = 0; i < b->figures->len; i++)
    {
      g_free (g_array_index (b->figures, Figure, i).label);
      g_free (g_array_index (b->figures, Figure, i).unit);
    }
  g_array_unref (b->figures);
  for (guint i = 0; i < b->devices_cap; i++)
    {
      g_free (b->devices[i].id);
      g_free (b->devices[i].secret);
      g_free (b->devices[i].basic);
      g_free (b->devices[i].ingest_head);
    }
  g_free (b->devices);
  fl_buf_clear (&b->body);
  g_free (b->host);
  g_free (b->bearer);
  g_free (b->token);
  g_free (b->relay.exe);
  g_free (b->relay.data_dir);
  g_free (b->relay.pool_id);
  g_free (b->relay.client_id);
  g_free (b->max_other_phase);
  g_strfreev (b->envp);
  close (b->tfd);
  close (b->epfd);
  return status;
}
