/* A STARTTLS load generator for the TLS benches (smtp-source has no TLS). Bench tool only,
 * not part of tern. Blocking sockets, one thread per session, OpenSSL for the handshake.
 *
 *   tls-source [-s SESSIONS] [-m MESSAGES] [-l SIZE] [-r] [-T SECONDS] HOST:PORT
 *       per message: connect, 220, EHLO, STARTTLS, handshake, EHLO, MAIL, RCPT, DATA,
 *       SIZE bytes, ".", QUIT, close. -r reuses each session's last TLS session (resumption).
 *       Prints "sent N failed F seconds T resumed R user_s U sys_s Y". -P: the same dialogue
 *       without STARTTLS (to compare the client with smtp-source).
 *   tls-source -i CONNS [-s THREADS] [-H SECONDS] [-P] HOST:PORT
 *       opens CONNS connections that each reach EHLO after the handshake, prints
 *       "idle_established N failed F" and holds them until killed or SECONDS (600) pass.
 *       -P: plain connections that stop after the first EHLO (no STARTTLS), for comparison.
 * Every network wait is bounded by -T (default 30 s) through socket timeouts. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in g_addr;
static SSL_CTX* g_ctx;
static int g_sessions = 20, g_messages = 4000, g_size = 1024, g_resume = 0, g_idle = 0, g_plain = 0;
static int g_timeout = 30, g_hold = 600;
static char* g_body;
static atomic_int g_next, g_sent, g_failed, g_resumed;

struct conn {
  int fd;
  SSL* ssl;
  SSL* spare; /* the last connection's SSL object, cleared for the next (load mode) */
  char buf[4096];
  int len;
};

static int io_read(struct conn* c, char* p, int n) {
  if (c->ssl) return SSL_read(c->ssl, p, n);
  return (int)read(c->fd, p, (size_t)n);
}

static int io_write(struct conn* c, const char* p, int n) {
  while (n > 0) {
    int w = c->ssl ? SSL_write(c->ssl, p, n) : (int)write(c->fd, p, (size_t)n);
    if (w <= 0) return -1;
    p += w;
    n -= w;
  }
  return 0;
}

/* Reads one whole (possibly multi-line) reply; returns its code or -1. */
static int reply(struct conn* c) {
  for (;;) {
    char* nl;
    while ((nl = memchr(c->buf, '\n', (size_t)c->len)) != NULL) {
      int line = (int)(nl - c->buf) + 1;
      int code = line >= 4 ? atoi(c->buf) : -1;
      int last = line < 4 || c->buf[3] != '-';
      memmove(c->buf, c->buf + line, (size_t)(c->len - line));
      c->len -= line;
      if (last) return code;
    }
    if (c->len == (int)sizeof c->buf) return -1;
    int n = io_read(c, c->buf + c->len, (int)sizeof c->buf - c->len);
    if (n <= 0) return -1;
    c->len += n;
  }
}

static int cmd(struct conn* c, const char* line, int want) {
  if (io_write(c, line, (int)strlen(line)) < 0) return -1;
  return reply(c) == want ? 0 : -1;
}

static void conn_close(struct conn* c) {
  if (c->ssl) {
    SSL_shutdown(c->ssl); /* sends close_notify; does not wait for the peer's */
    /* SSL_new costs more client CPU than a resumed handshake in OpenSSL 3.0: reuse. */
    if (!g_idle && !c->spare && SSL_clear(c->ssl) == 1) c->spare = c->ssl;
    else SSL_free(c->ssl);
  }
  if (c->fd >= 0) close(c->fd);
  c->ssl = NULL;
  c->fd = -1;
}

/* A private copy of a saved session for each connection: OpenSSL changes the session object
 * it resumed from, and offering that same object again was refused every other time. A dup
 * shares the peer's certificate; an i2d/d2i copy re-parsed it (0.3 ms of CPU a message). */
static SSL_SESSION* fresh_copy(SSL_SESSION* s) { return SSL_SESSION_dup(s); }

/* Connects and reaches EHLO after the handshake. 0 on success. */
static int open_tls(struct conn* c, SSL_SESSION* resume) {
  c->len = 0;
  c->ssl = NULL;
  c->fd = socket(AF_INET, SOCK_STREAM, 0);
  if (c->fd < 0) return -1;
  struct timeval tv = {g_timeout, 0};
  setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(c->fd, (struct sockaddr*)&g_addr, sizeof g_addr) != 0) return -1;
  if (reply(c) != 220) return -1;
  if (cmd(c, "EHLO client.bench.example\r\n", 250) < 0) return -1;
  if (g_plain) return 0;
  if (cmd(c, "STARTTLS\r\n", 220) < 0) return -1;
  if (c->len != 0) return -1; /* nothing may follow the 220 before the handshake */
  c->ssl = c->spare ? c->spare : SSL_new(g_ctx);
  c->spare = NULL;
  if (!c->ssl) return -1;
  SSL_set_fd(c->ssl, c->fd);
  /* A cleared SSL object would offer its last session again: only ours, or none. */
  SSL_set_session(c->ssl, NULL);
  if (resume) {
    SSL_SESSION* copy = fresh_copy(resume);
    if (copy) SSL_set_session(c->ssl, copy);
    SSL_SESSION_free(copy);
  }
  if (SSL_connect(c->ssl) != 1) return -1;
  if (SSL_session_reused(c->ssl)) atomic_fetch_add(&g_resumed, 1);
  return cmd(c, "EHLO client.bench.example\r\n", 250);
}

static int one_message(struct conn* c, SSL_SESSION** session) {
  int ok = open_tls(c, *session) == 0 && cmd(c, "MAIL FROM:<bench@example.net>\r\n", 250) == 0 &&
           cmd(c, "RCPT TO:<sink@example.org>\r\n", 250) == 0 && cmd(c, "DATA\r\n", 354) == 0 &&
           io_write(c, g_body, (int)strlen(g_body)) == 0 && cmd(c, ".\r\n", 250) == 0 &&
           cmd(c, "QUIT\r\n", 221) == 0;
  if (ok && g_resume && c->ssl) {
    /* TLS 1.3 tickets arrive after the handshake: by QUIT's reply they have been read. */
    SSL_SESSION* s = SSL_get1_session(c->ssl);
    if (s && SSL_SESSION_is_resumable(s)) {
      if (*session) SSL_SESSION_free(*session);
      *session = s;
    } else if (s) {
      SSL_SESSION_free(s);
    }
  }
  conn_close(c);
  return ok ? 0 : -1;
}

static void* load_thread(void* arg) {
  (void)arg;
  struct conn* c = calloc(1, sizeof *c);
  SSL_SESSION* session = NULL;
  while (atomic_fetch_add(&g_next, 1) < g_messages) {
    if (one_message(c, &session) == 0) atomic_fetch_add(&g_sent, 1);
    else atomic_fetch_add(&g_failed, 1);
  }
  if (session) SSL_SESSION_free(session);
  SSL_free(c->spare);
  free(c);
  return NULL;
}

static void* idle_thread(void* arg) {
  (void)arg;
  while (atomic_fetch_add(&g_next, 1) < g_idle) {
    struct conn* c = calloc(1, sizeof *c); /* kept open (and leaked) until the process ends */
    if (open_tls(c, NULL) == 0) {
      atomic_fetch_add(&g_sent, 1);
    } else {
      atomic_fetch_add(&g_failed, 1);
      conn_close(c);
      free(c);
    }
  }
  return NULL;
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
  int o;
  while ((o = getopt(argc, argv, "s:m:l:ri:T:H:P")) != -1) {
    switch (o) {
      case 's': g_sessions = atoi(optarg); break;
      case 'm': g_messages = atoi(optarg); break;
      case 'l': g_size = atoi(optarg); break;
      case 'r': g_resume = 1; break;
      case 'i': g_idle = atoi(optarg); break;
      case 'T': g_timeout = atoi(optarg); break;
      case 'H': g_hold = atoi(optarg); break;
      case 'P': g_plain = 1; break;
      default: fprintf(stderr, "usage: see the comment at the top of tls-source.c\n"); return 2;
    }
  }
  if (optind != argc - 1 || g_sessions < 1 || g_sessions > 1000) {
    fprintf(stderr, "tls-source: one HOST:PORT needed; 1..1000 sessions\n");
    return 2;
  }
  char host[64];
  int port = 0;
  if (sscanf(argv[optind], "%63[^:]:%d", host, &port) != 2 || inet_pton(AF_INET, host, &g_addr.sin_addr) != 1) {
    fprintf(stderr, "tls-source: bad address %s (IPv4:PORT)\n", argv[optind]);
    return 2;
  }
  g_addr.sin_family = AF_INET;
  g_addr.sin_port = htons((uint16_t)port);
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  /* A 1 KB body of 72-character lines, dot-safe. */
  g_body = malloc((size_t)g_size + 80);
  int at = 0;
  while (at < g_size) {
    at += snprintf(g_body + at, 80, "%.*s\r\n", 70, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijkl");
  }
  g_ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(g_ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(g_ctx, SSL_VERIFY_NONE, NULL); /* the bench measures the servers, not PKI */
  SSL_CTX_set_session_cache_mode(g_ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);

  pthread_t* t = calloc((size_t)g_sessions, sizeof *t);
  double t0 = now();
  for (int i = 0; i < g_sessions; i++) pthread_create(&t[i], NULL, g_idle ? idle_thread : load_thread, NULL);
  for (int i = 0; i < g_sessions; i++) pthread_join(t[i], NULL);
  double elapsed = now() - t0;
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  if (g_idle) {
    printf("idle_established %d failed %d seconds %.2f\n", atomic_load(&g_sent), atomic_load(&g_failed), elapsed);
    fflush(stdout);
    sleep((unsigned)g_hold); /* the driver measures, then kills us */
    return 0;
  }
  printf("sent %d failed %d seconds %.3f resumed %d user_s %.2f sys_s %.2f\n", atomic_load(&g_sent),
         atomic_load(&g_failed), elapsed, atomic_load(&g_resumed),
         (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6, (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
  return atomic_load(&g_failed) ? 1 : 0;
}
