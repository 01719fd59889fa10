/*
 * Native connection opener for the idle-connections benchmark (bench/loadgen/scenarios.ts).
 * One thread, epoll, non-blocking sockets: a Node generator spends more CPU opening 10k
 * connections than the broker does accepting them, so it measured itself.
 *
 *   connect HOST PORT COUNT WINDOW CLIENT_ID_PREFIX LEVEL KEEPALIVE SOURCES [TIMEOUT_S [DESTS]]
 *
 * Opens COUNT connections with at most WINDOW handshakes (TCP connect, CONNECT sent, CONNACK
 * not yet received) in flight; client ids are PREFIX0, PREFIX1, ...; LEVEL is 4 (3.1.1) or 5;
 * clean session/start. With a 127.x.x.x HOST and SOURCES > 1, the clients are bound round-robin
 * to 127.0.0.1 .. 127.0.0.SOURCES (one source address runs out of ephemeral ports at ~28k);
 * with DESTS > 1 (default 1) they also go round-robin to HOST, HOST+1, ... HOST+DESTS-1 (the broker
 * must listen on all of them, e.g. on 0.0.0.0): SOURCES × DESTS address pairs, ~28k ports each.
 * When every handshake has ended (or TIMEOUT_S, default 120, has passed) it prints one line
 *   {"connected":N,"failed":N,"seconds":S,"cpu_user_us":N,"cpu_sys_us":N[,"error":"first failure"]}
 * (seconds: first connect() to last CONNACK; CPU: its own, over the same span), then keeps the
 * connections open, counting those the broker drops, until stdin reaches EOF or a line "close";
 * then it prints {"lost":N}, sends DISCONNECT on every open connection, closes them, exits 0.
 * A line "ping" sends PINGREQ on every open connection and, once each has answered with
 * PINGRESP, been dropped, or 30 s have passed, prints {"pinged":N,"answered":N,"seconds":S}.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { IDLE_SLOT, CONNECTING, SENDING, WAIT_CONNACK, OPEN, DONE };
enum { HDR_TYPE, HDR_LEN, BODY };

struct conn {
  int fd;
  uint8_t state;
  uint8_t phase;  /* CONNACK framing */
  uint8_t shift;  /* remaining-length varint */
  uint8_t code;   /* CONNACK return/reason code */
  uint16_t sent;  /* bytes of CONNECT written */
  uint32_t rem;   /* remaining length, then bytes of it still to read */
  uint32_t got;   /* body bytes read; once OPEN, bytes of the PINGRESP read */
  uint8_t ping;   /* once OPEN: 0 not pinged, 1 PINGREQ sent, 2 PINGRESP received */
  uint8_t first;  /* first byte of the answer to PINGREQ */
};

static struct conn *conns;
static long count, window;
static int level, keepalive, sources, dests = 1, epfd;
static struct sockaddr_storage dst;
static socklen_t dstlen;
static const char *prefix;
static long opened, inflight, connected, failed, lost, pinged, answered;
static char first_error[160];
static struct timespec t_first, t_last;

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static void fail_msg(const char *what, int err) {
  if (first_error[0] == '\0')
    snprintf(first_error, sizeof first_error, "%s%s%s", what, err ? ": " : "", err ? strerror(err) : "");
}

static void drop(struct conn *c) {
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
  c->state = DONE;
}

/* A handshake ended without CONNACK 0. */
static void handshake_failed(struct conn *c, const char *what, int err) {
  fail_msg(what, err);
  drop(c);
  inflight--;
  failed++;
}

static size_t encode_connect(uint8_t *out, long i) {
  char id[128];
  int idlen = snprintf(id, sizeof id, "%s%ld", prefix, i);
  if (idlen < 0 || idlen >= (int)sizeof id) idlen = 0;
  size_t body = 10 + (level == 5 ? 1 : 0) + 2 + (size_t)idlen; /* < 128: one length byte */
  uint8_t *p = out;
  *p++ = 0x10;
  *p++ = (uint8_t)body;
  *p++ = 0; *p++ = 4; memcpy(p, "MQTT", 4); p += 4;
  *p++ = (uint8_t)level;
  *p++ = 0x02; /* clean session / clean start, no will, no credentials */
  *p++ = (uint8_t)(keepalive >> 8); *p++ = (uint8_t)keepalive;
  if (level == 5) *p++ = 0; /* no properties */
  *p++ = (uint8_t)(idlen >> 8); *p++ = (uint8_t)idlen;
  memcpy(p, id, (size_t)idlen);
  return (size_t)(p - out) + (size_t)idlen;
}

static void open_next(void) {
  long i = opened++;
  struct conn *c = &conns[i];
  c->fd = socket(dst.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) {
    fail_msg("socket", errno);
    c->state = DONE;
    failed++;
    return;
  }
  inflight++;
  if (sources > 1) {
#ifdef IP_BIND_ADDRESS_NO_PORT
    int one = 1; /* pick the port at connect(): unique per 4-tuple, not per source address */
    setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
#endif
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(i % sources));
    if (bind(c->fd, (struct sockaddr *)&src, sizeof src) < 0) {
      handshake_failed(c, "bind", errno);
      return;
    }
  }
  struct sockaddr_storage to = dst;
  if (dests > 1) /* the destination changes every SOURCES connections: every pair of addresses is used */
    ((struct sockaddr_in *)&to)->sin_addr.s_addr = htonl(ntohl(((struct sockaddr_in *)&dst)->sin_addr.s_addr) + (uint32_t)((i / sources) % dests));
  if (connect(c->fd, (struct sockaddr *)&to, dstlen) < 0 && errno != EINPROGRESS) {
    handshake_failed(c, "connect", errno);
    return;
  }
  c->state = CONNECTING;
  /* Edge-triggered, registered once: writable once connected, readable when the CONNACK
   * (or later a disconnect) arrives; no epoll_ctl per state change. */
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.u64 = (uint64_t)i};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) handshake_failed(c, "epoll_ctl", errno);
}

static void on_writable(long i) {
  struct conn *c = &conns[i];
  if (c->state == CONNECTING) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      handshake_failed(c, "connect", err);
      return;
    }
    c->state = SENDING;
  }
  uint8_t pkt[256];
  size_t n = encode_connect(pkt, i);
  ssize_t w = send(c->fd, pkt + c->sent, n - c->sent, MSG_NOSIGNAL);
  if (w < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK) handshake_failed(c, "send CONNECT", errno);
    return;
  }
  c->sent += (uint16_t)w;
  if (c->sent < n) return;
  c->state = WAIT_CONNACK;
}

/* Feed bytes to the CONNACK framer; returns 1 when the whole CONNACK has been read. */
static int parse_connack(struct conn *c, const uint8_t *p, size_t n, size_t *used) {
  size_t k = 0;
  while (k < n) {
    uint8_t b = p[k++];
    if (c->phase == HDR_TYPE) {
      if (b != 0x20) { *used = k; c->code = 0xff; return -1; }
      c->phase = HDR_LEN;
    } else if (c->phase == HDR_LEN) {
      c->rem |= (uint32_t)(b & 0x7f) << c->shift;
      c->shift += 7;
      if (b & 0x80) {
        if (c->shift > 21) { *used = k; c->code = 0xfe; return -1; }
        continue;
      }
      if (c->rem < 2) { *used = k; c->code = 0xfe; return -1; }
      c->phase = BODY;
    } else {
      if (c->got == 1) c->code = b;
      c->got++;
      if (c->got == c->rem) { *used = k; return 1; }
    }
  }
  *used = k;
  return 0;
}

/* Edge-triggered: read until the socket is empty (a short read) or, after a hang-up, until EOF. */
static void on_readable(long i, uint32_t events) {
  struct conn *c = &conns[i];
  int hup = (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
  uint8_t buf[4096];
  for (;;) {
    ssize_t r = read(c->fd, buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (c->state == OPEN) { /* idle: only a PINGRESP is expected, EOF or an error is a drop */
      if (r <= 0) {
        drop(c);
        lost++;
        return;
      }
      if (c->ping == 1) {
        if (c->got == 0) c->first = buf[0];
        c->got += (uint32_t)r;
        if (c->got >= 2) {
          c->ping = 2;
          if (c->first == 0xd0) answered++;
        }
      }
    } else if (r <= 0) {
      handshake_failed(c, r == 0 ? "closed by the broker before CONNACK" : "read", r == 0 ? 0 : errno);
      return;
    } else {
      size_t used;
      int done = parse_connack(c, buf, (size_t)r, &used);
      if (done < 0) {
        handshake_failed(c, c->code == 0xff ? "first packet is not a CONNACK" : "malformed CONNACK", 0);
        return;
      }
      if (done > 0) {
        if (c->code != 0) {
          char what[48];
          snprintf(what, sizeof what, "CONNACK refused with code %u", c->code);
          handshake_failed(c, what, 0);
          return;
        }
        c->state = OPEN;
        inflight--;
        connected++;
        clock_gettime(CLOCK_MONOTONIC, &t_last);
      }
    }
    if ((size_t)r < sizeof buf && !hup) return;
  }
}

static long long rusage_us(const struct timeval *tv) { return tv->tv_sec * 1000000LL + tv->tv_usec; }

enum { CMD_NONE, CMD_CLOSE, CMD_PING };

/* CMD_CLOSE on EOF or "close", CMD_PING on "ping" (one command per call; the rest of a read is kept). */
static int read_stdin_command(void) {
  static char line[64];
  static size_t len;
  static char buf[256];
  static ssize_t have, at;
  if (at >= have) {
    have = read(0, buf, sizeof buf);
    at = 0;
    if (have < 0) {
      have = 0;
      return errno != EAGAIN && errno != EINTR ? CMD_CLOSE : CMD_NONE;
    }
    if (have == 0) return CMD_CLOSE;
  }
  while (at < have) {
    char ch = buf[at++];
    if (ch == '\n') {
      line[len] = '\0';
      len = 0;
      if (strcmp(line, "close") == 0) return CMD_CLOSE;
      if (strcmp(line, "ping") == 0) return CMD_PING;
    } else if (len + 1 < sizeof line) {
      line[len++] = ch;
    }
  }
  return CMD_NONE;
}

static void ping_all(void) {
  static const uint8_t pingreq[2] = {0xc0, 0x00};
  pinged = answered = 0;
  for (long i = 0; i < opened; i++) {
    struct conn *c = &conns[i];
    if (c->state != OPEN) continue;
    c->ping = 1;
    c->got = 0;
    if (send(c->fd, pingreq, sizeof pingreq, MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t)sizeof pingreq) pinged++;
    else c->ping = 0;
  }
}

/* Pinged connections still waiting for their PINGRESP (dropped ones count as done). */
static long ping_waiting(void) {
  long n = 0;
  for (long i = 0; i < opened; i++)
    if (conns[i].state == OPEN && conns[i].ping == 1) n++;
  return n;
}

int main(int argc, char **argv) {
  if (argc < 9 || argc > 11) {
    fprintf(stderr, "usage: %s HOST PORT COUNT WINDOW CLIENT_ID_PREFIX LEVEL KEEPALIVE SOURCES [TIMEOUT_S [DESTS]]\n", argv[0]);
    return 2;
  }
  count = atol(argv[3]);
  window = atol(argv[4]);
  prefix = argv[5];
  level = atoi(argv[6]);
  keepalive = atoi(argv[7]);
  sources = atoi(argv[8]);
  double timeout = argc >= 10 ? atof(argv[9]) : 120;
  if (argc == 11) dests = atoi(argv[10]);
  if (!(timeout > 0 && timeout <= 86400)) timeout = 120;
  if (count < 1 || window < 1 || (level != 4 && level != 5) || keepalive < 0 || keepalive > 65535 || sources < 1 || sources > 254 || dests < 1 || dests > 254 ||
      strlen(prefix) > 64) {
    fprintf(stderr, "connect: bad arguments\n");
    return 2;
  }
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
  int gai = getaddrinfo(argv[1], argv[2], &hints, &ai);
  if (gai != 0) {
    fprintf(stderr, "connect: %s: %s\n", argv[1], gai_strerror(gai));
    return 2;
  }
  memcpy(&dst, ai->ai_addr, ai->ai_addrlen);
  dstlen = ai->ai_addrlen;
  freeaddrinfo(ai);
  /* Source spreading only makes sense towards loopback. */
  if (dst.ss_family != AF_INET || (ntohl(((struct sockaddr_in *)&dst)->sin_addr.s_addr) >> 24) != 127) sources = dests = 1;

  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  signal(SIGPIPE, SIG_IGN);
  conns = calloc((size_t)count, sizeof *conns);
  epfd = epoll_create1(EPOLL_CLOEXEC);
  if (conns == NULL || epfd < 0) {
    perror("connect: setup");
    return 1;
  }
  for (long i = 0; i < count; i++) conns[i].fd = -1;
  fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
  struct epoll_event in = {.events = EPOLLIN, .data.u64 = UINT64_MAX};
  int have_stdin = epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &in) == 0; /* fails if stdin is a regular file */

  struct rusage ru0, ru1;
  getrusage(RUSAGE_SELF, &ru0);
  clock_gettime(CLOCK_MONOTONIC, &t_first);
  t_last = t_first;
  double deadline = now_s() + timeout;
  int quit = 0, reported = 0;
  double ping_started = 0, ping_deadline = 0; /* a ping round is running while ping_deadline > 0 */
  struct epoll_event evs[512];
  while (!quit) {
    if (!reported) {
      while (opened < count && inflight < window) open_next();
      if (connected + failed >= count || now_s() >= deadline) {
        if (connected + failed < count) {
          fail_msg("timed out waiting for CONNACK", 0);
          for (long i = 0; i < opened; i++)
            if (conns[i].state != OPEN && conns[i].state != DONE) drop(&conns[i]);
          failed = count - connected;
        }
        getrusage(RUSAGE_SELF, &ru1);
        double secs = (t_last.tv_sec - t_first.tv_sec) + (t_last.tv_nsec - t_first.tv_nsec) / 1e9;
        printf("{\"connected\":%ld,\"failed\":%ld,\"seconds\":%.6f,\"cpu_user_us\":%lld,\"cpu_sys_us\":%lld", connected, failed, secs,
               rusage_us(&ru1.ru_utime) - rusage_us(&ru0.ru_utime), rusage_us(&ru1.ru_stime) - rusage_us(&ru0.ru_stime));
        if (first_error[0] != '\0') printf(",\"error\":\"%s\"", first_error); /* no quotes or backslashes in our messages */
        printf("}\n");
        fflush(stdout);
        reported = 1;
        if (!have_stdin) break;
      }
    }
    if (ping_deadline > 0 && (ping_waiting() == 0 || now_s() >= ping_deadline)) {
      printf("{\"pinged\":%ld,\"answered\":%ld,\"seconds\":%.6f}\n", pinged, answered, now_s() - ping_started);
      fflush(stdout);
      ping_deadline = 0;
    }
    int ms = reported ? (ping_deadline > 0 ? 100 : -1) : (int)((deadline - now_s()) * 1000) + 1;
    int n = epoll_wait(epfd, evs, 512, ms < 0 && !reported ? 0 : ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      perror("epoll_wait");
      return 1;
    }
    for (int k = 0; k < n; k++) {
      uint64_t id = evs[k].data.u64;
      if (id == UINT64_MAX) {
        int cmd;
        while ((cmd = read_stdin_command()) != CMD_NONE) {
          if (cmd == CMD_CLOSE) {
            quit = 1;
            break;
          }
          if (reported && ping_deadline == 0) {
            ping_all();
            ping_started = now_s();
            ping_deadline = ping_started + 30;
          }
        }
        continue;
      }
      struct conn *c = &conns[id];
      if (c->state == CONNECTING || c->state == SENDING) {
        on_writable((long)id); /* writable, or an error that SO_ERROR / send() reports */
      } else if (c->state == WAIT_CONNACK || c->state == OPEN) {
        on_readable((long)id, evs[k].events);
      }
    }
  }
  printf("{\"lost\":%ld}\n", lost);
  fflush(stdout);
  static const uint8_t disconnect[2] = {0xe0, 0x00};
  for (long i = 0; i < opened; i++) {
    if (conns[i].state == OPEN) send(conns[i].fd, disconnect, sizeof disconnect, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (conns[i].fd >= 0) close(conns[i].fd);
  }
  return 0;
}
