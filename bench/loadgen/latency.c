/*
 * Native latency probe for the latency benchmark (bench/loadgen/scenarios.ts, latency-native.ts).
 * One thread, epoll, a timerfd, non-blocking sockets, nothing allocated once publishing starts:
 * the Node generator's own pauses (its GC, its 1 ms timer, other work on its CPU) showed up in the
 * tail percentiles it measured, so the comparison between brokers blurred.
 *
 *   latency HOST PORT LEVEL RATE PAYLOAD WARMUP_MS DURATION_MS [DUMP_FILE]
 *
 * Connects a subscriber (clean session, SUBSCRIBE bench/lat QoS 0) and a publisher, LEVEL 4
 * (MQTT 3.1.1) or 5. The publisher sends one QoS 0 PUBLISH to bench/lat per slot of an absolute
 * CLOCK_MONOTONIC schedule at RATE msg/s; a slot missed because the probe woke late is skipped,
 * never sent in a burst. Payload (PAYLOAD ≥ 16 bytes): sequence number (u64, big-endian), send
 * time (CLOCK_MONOTONIC ns, u64 big-endian, read just before write()), zeros. The subscriber
 * frames every packet, and for each PUBLISH takes latency = time its read() returned − send time.
 *
 * WARMUP_MS after the first slot the window opens, DURATION_MS later it closes; each edge is
 * printed the moment it happens (the orchestrator reads the broker's CPU time there):
 *   {"window":"start"}
 *   {"window":"end"}
 * then one line with the samples received inside the window (percentile i = ceil(q·n) − 1 of the
 * sorted samples, as scenarios.ts), the sequence gaps seen in it (QoS 0 loss) and its own CPU:
 *   {"p50_us":..,"p90_us":..,"p99_us":..,"p999_us":..,"max_us":..,"samples":N,"received":N,
 *    "gaps":N,"sent":N,"skipped":N,"unsent":N,"overflow":N,"window_s":S,"cpu_user_us":N,"cpu_sys_us":N,
 *    "rt":0|1}
 * (sent/skipped/unsent: PUBLISHes written, slots skipped, slots dropped because the socket's
 * queue was full; all counted inside the window; overflow: samples past its buffer; rt: whether
 * it ran SCHED_FIFO, asked by BENCH_LATENCY_RT=1 in its environment). With DUMP_FILE, every
 * sample is appended to it as "send_ns latency_us" (as BENCH_LATENCY_DUMP in worker.ts). Then
 * DISCONNECT on both, exit 0.
 * Any failure: one line "latency: ..." on stderr, exit 1 (2: bad arguments). It gives up
 * WARMUP_MS + DURATION_MS + 30 s after it started, whatever it is doing.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define TOPIC "bench/lat"
#define HEAD_MAX 512 /* body bytes kept per packet: topic, properties, the 16-byte stamp */
#define KEEPALIVE 600 /* as the Node generator's CONNECT */

enum { HDR_TYPE, HDR_LEN, BODY };
enum { T_SUB, T_PUB, T_TIMER };

struct conn {
  const char *name;
  int fd;
  int connected; /* TCP connect() finished */
  int closing;   /* DISCONNECT queued: what arrives is ignored, EOF ends it */
  /* framer */
  uint8_t phase, type, shift;
  uint32_t rem, got;
  uint8_t head[HEAD_MAX];
  /* output queue: bytes not yet accepted by the socket */
  uint8_t *out;
  size_t out_cap, out_len;
  int want_out; /* EPOLLOUT registered */
  /* handshake */
  int connack; /* -1 until CONNACK */
  int suback;  /* -1 until SUBACK */
};

static struct conn sub = {.name = "subscriber", .fd = -1, .connack = -1, .suback = -1};
static struct conn pub = {.name = "publisher", .fd = -1, .connack = -1, .suback = -1};
static int level, epfd, tfd;
static double rate;
static long payload;
static uint32_t max_packet; /* MQTT 5 Maximum Packet Size of the broker (0: none) */
static int server_keepalive = -1;

/* measurement state */
static int measuring;
static int64_t *lat_ns, *sent_ns; /* per sample */
static long cap, nsamples, overflow;
static uint64_t last_seq;
static long received, gaps, sent, skipped, unsent;

static void fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("latency: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

static int64_t mono(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static uint64_t be64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | p[i];
  return v;
}

static void put_be64(uint8_t *p, uint64_t v) {
  for (int i = 7; i >= 0; i--) {
    p[i] = (uint8_t)v;
    v >>= 8;
  }
}

static size_t put_varint(uint8_t *p, uint32_t v) {
  size_t n = 0;
  do {
    uint8_t b = v & 0x7f;
    v >>= 7;
    p[n++] = b | (v ? 0x80 : 0);
  } while (v);
  return n;
}

/* Variable byte integer at p[*at] within len bytes; -1 if malformed or cut short. */
static long get_varint(const uint8_t *p, uint32_t len, uint32_t *at) {
  uint32_t v = 0;
  for (int shift = 0; shift <= 21; shift += 7) {
    if (*at >= len) return -1;
    uint8_t b = p[(*at)++];
    v |= (uint32_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) return v;
  }
  return -1;
}

static void set_events(struct conn *c) {
  struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | (c->want_out ? EPOLLOUT : 0), .data.u32 = c == &sub ? T_SUB : T_PUB};
  if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) fail("%s: epoll_ctl: %s", c->name, strerror(errno));
}

/* Write what is queued; EPOLLOUT is registered only while something is left. */
static void flush_out(struct conn *c) {
  if (!c->connected) return;
  size_t off = 0;
  while (off < c->out_len) {
    ssize_t w = send(c->fd, c->out + off, c->out_len - off, MSG_NOSIGNAL);
    if (w > 0) {
      off += (size_t)w;
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    fail("%s: send: %s", c->name, w < 0 ? strerror(errno) : "no progress");
  }
  if (off > 0) {
    memmove(c->out, c->out + off, c->out_len - off);
    c->out_len -= off;
  }
  int want = c->out_len > 0;
  if (want != c->want_out) {
    c->want_out = want;
    set_events(c);
  }
}

/* Write bytes, queueing what the socket does not take; 0 if the queue has no room (nothing sent). */
static int send_bytes(struct conn *c, const uint8_t *p, size_t n) {
  if (c->out_len + n > c->out_cap) return 0;
  if (c->out_len == 0 && c->connected) { /* the usual case: straight from the caller's buffer */
    ssize_t w;
    do w = send(c->fd, p, n, MSG_NOSIGNAL);
    while (w < 0 && errno == EINTR);
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) fail("%s: send: %s", c->name, strerror(errno));
    if (w > 0) {
      p += w;
      n -= (size_t)w;
    }
    if (n == 0) return 1;
  }
  memcpy(c->out + c->out_len, p, n);
  c->out_len += n;
  flush_out(c); /* registers EPOLLOUT for the rest */
  return 1;
}

/* Skip MQTT 5 properties p[at..at+len), noting the CONNACK ones that matter here. */
static int read_props(const uint8_t *p, uint32_t at, uint32_t end) {
  while (at < end) {
    uint8_t id = p[at++];
    uint32_t need;
    switch (id) {
    case 0x01: case 0x17: case 0x19: case 0x24: case 0x25: case 0x28: case 0x29: case 0x2a:
      need = 1;
      break;
    case 0x13: case 0x21: case 0x22: case 0x23:
      need = 2;
      break;
    case 0x02: case 0x11: case 0x18: case 0x27:
      need = 4;
      break;
    case 0x0b:
      if (get_varint(p, end, &at) < 0) return -1;
      need = 0;
      break;
    case 0x03: case 0x08: case 0x09: case 0x12: case 0x15: case 0x16: case 0x1a: case 0x1c: case 0x1f: case 0x26:
      for (int k = 0; k < (id == 0x26 ? 2 : 1); k++) { /* user property: two strings */
        if (at + 2 > end) return -1;
        at += 2u + ((uint32_t)p[at] << 8 | p[at + 1]);
      }
      need = 0;
      break;
    default:
      return -1;
    }
    if (at + need > end) return -1;
    if (id == 0x13) server_keepalive = p[at] << 8 | p[at + 1];
    if (id == 0x27) max_packet = (uint32_t)p[at] << 24 | (uint32_t)p[at + 1] << 16 | (uint32_t)p[at + 2] << 8 | p[at + 3];
    at += need;
  }
  return at == end ? 0 : -1;
}

static void on_publish(struct conn *c, int64_t now) {
  uint32_t avail = c->rem < HEAD_MAX ? c->rem : HEAD_MAX;
  const uint8_t *h = c->head;
  if (avail < 2) fail("%s: malformed PUBLISH", c->name);
  uint32_t at = 2u + ((uint32_t)h[0] << 8 | h[1]);
  if ((c->type >> 1 & 3) != 0) at += 2; /* packet identifier (not expected: QoS 0 subscription) */
  if (level == 5) {
    long plen = get_varint(h, avail, &at);
    if (plen < 0) fail("%s: malformed PUBLISH properties", c->name);
    at += (uint32_t)plen;
  }
  if (at + 16 > avail) fail("%s: PUBLISH without a 16-byte stamp in the first %d bytes of its body", c->name, HEAD_MAX);
  uint64_t seq = be64(h + at);
  int64_t stamp = (int64_t)be64(h + at + 8);
  if (measuring) {
    received++;
    if (seq > last_seq + 1 && last_seq != 0) gaps += (long)(seq - last_seq - 1);
    if (nsamples < cap) {
      lat_ns[nsamples] = now - stamp;
      sent_ns[nsamples] = stamp;
      nsamples++;
    } else {
      overflow++;
    }
  }
  if (seq > last_seq) last_seq = seq;
}

static void on_packet(struct conn *c, int64_t now) {
  uint32_t avail = c->rem < HEAD_MAX ? c->rem : HEAD_MAX;
  switch (c->type >> 4) {
  case 2: /* CONNACK */
    if (c->connack >= 0 || avail < 2) fail("%s: unexpected or malformed CONNACK", c->name);
    c->connack = c->head[1];
    if (c->connack != 0) fail("%s: CONNACK refused with code 0x%02x", c->name, c->connack);
    if (level == 5 && avail > 2) {
      uint32_t at = 2;
      long plen = get_varint(c->head, avail, &at);
      if (plen < 0 || at + (uint32_t)plen > avail || read_props(c->head, at, at + (uint32_t)plen) < 0) fail("%s: malformed CONNACK properties", c->name);
    }
    break;
  case 9: { /* SUBACK */
    uint32_t at = 2;
    if (level == 5) {
      long plen = get_varint(c->head, avail, &at);
      if (plen < 0) fail("%s: malformed SUBACK", c->name);
      at += (uint32_t)plen;
    }
    if (at >= avail) fail("%s: malformed SUBACK", c->name);
    c->suback = c->head[at];
    if (c->suback >= 0x80) fail("%s: SUBSCRIBE %s refused with code 0x%02x", c->name, TOPIC, c->suback);
    break;
  }
  case 3:
    if (c == &sub) on_publish(c, now);
    break;
  case 13: /* PINGRESP */
    break;
  case 14:
    fail("%s: the broker sent DISCONNECT (reason 0x%02x)", c->name, avail > 0 ? c->head[0] : 0);
    break;
  default:
    fail("%s: unexpected packet type %d from the broker", c->name, c->type >> 4);
  }
}

/* Frame packets out of the byte stream (any split across reads). */
static void feed(struct conn *c, const uint8_t *p, size_t n, int64_t now) {
  while (n > 0) {
    if (c->phase == HDR_TYPE) {
      c->type = *p++;
      n--;
      c->rem = c->got = 0;
      c->shift = 0;
      c->phase = HDR_LEN;
    } else if (c->phase == HDR_LEN) {
      uint8_t b = *p++;
      n--;
      c->rem |= (uint32_t)(b & 0x7f) << c->shift;
      c->shift += 7;
      if (b & 0x80) {
        if (c->shift > 21) fail("%s: malformed remaining length", c->name);
      } else if (c->rem == 0) {
        on_packet(c, now);
        c->phase = HDR_TYPE;
      } else {
        c->phase = BODY;
      }
    } else {
      size_t take = c->rem - c->got < n ? c->rem - c->got : n;
      if (c->got < HEAD_MAX) memcpy(c->head + c->got, p, take < HEAD_MAX - c->got ? take : HEAD_MAX - c->got);
      c->got += (uint32_t)take;
      p += take;
      n -= take;
      if (c->got == c->rem) {
        on_packet(c, now);
        c->phase = HDR_TYPE;
      }
    }
  }
}

static void on_readable(struct conn *c) {
  static uint8_t buf[1 << 16];
  for (;;) {
    ssize_t r = read(c->fd, buf, sizeof buf);
    if (r > 0) {
      if (c->closing) continue;
      feed(c, buf, (size_t)r, mono());
      if ((size_t)r < sizeof buf) return;
      continue;
    }
    if (r == 0 && c->closing) {
      epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
      c->out_len = 0;
      return;
    }
    if (r == 0) fail("%s: connection closed by the broker", c->name);
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    fail("%s: read: %s", c->name, strerror(errno));
  }
}

static void on_writable(struct conn *c) {
  if (!c->connected) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) fail("%s: connect: %s", c->name, strerror(err));
    c->connected = 1;
  }
  flush_out(c);
}

static void open_conn(struct conn *c, const struct addrinfo *ai, const char *client_id, size_t queue) {
  c->out_cap = queue;
  c->out = malloc(queue);
  if (c->out == NULL) fail("out of memory");
  c->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) fail("%s: socket: %s", c->name, strerror(errno));
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) < 0) {
    if (errno != EINPROGRESS) fail("%s: connect: %s", c->name, strerror(errno));
  } else {
    c->connected = 1;
  }
  c->want_out = 1; /* writable: connected (or failed), then CONNECT written */
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.u32 = c == &sub ? T_SUB : T_PUB};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) fail("%s: epoll_ctl: %s", c->name, strerror(errno));
  /* CONNECT: clean session / clean start, no will, no credentials, no properties. */
  uint8_t pkt[64], *p = pkt + 2;
  size_t idlen = strlen(client_id);
  *p++ = 0; *p++ = 4; memcpy(p, "MQTT", 4); p += 4;
  *p++ = (uint8_t)level;
  *p++ = 0x02;
  *p++ = KEEPALIVE >> 8; *p++ = KEEPALIVE & 0xff;
  if (level == 5) *p++ = 0;
  *p++ = 0; *p++ = (uint8_t)idlen;
  memcpy(p, client_id, idlen);
  p += idlen;
  pkt[0] = 0x10;
  pkt[1] = (uint8_t)(p - pkt - 2); /* < 128 */
  send_bytes(c, pkt, (size_t)(p - pkt));
}

static void subscribe(void) {
  uint8_t pkt[64], *p = pkt + 2;
  size_t tl = strlen(TOPIC);
  *p++ = 0; *p++ = 1; /* packet identifier */
  if (level == 5) *p++ = 0;
  *p++ = 0; *p++ = (uint8_t)tl;
  memcpy(p, TOPIC, tl);
  p += tl;
  *p++ = 0; /* QoS 0 (MQTT 5: no local off, retain handling 0) */
  pkt[0] = 0x82;
  pkt[1] = (uint8_t)(p - pkt - 2);
  send_bytes(&sub, pkt, (size_t)(p - pkt));
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

/* As scenarios.ts percentile(): the element at ceil(q·n) − 1 of the sorted samples. */
static void print_percentile(const char *key, double q) {
  if (nsamples == 0) {
    printf("\"%s\":null,", key);
    return;
  }
  double x = q * (double)nsamples;
  long i = (long)x;
  if ((double)i < x) i++;
  i -= 1;
  if (i < 0) i = 0;
  if (i > nsamples - 1) i = nsamples - 1;
  printf("\"%s\":%.3f,", key, lat_ns[i] / 1e3);
}

static long long tv_us(const struct timeval *tv) { return tv->tv_sec * 1000000LL + tv->tv_usec; }

static void arm(int64_t at) {
  static int64_t armed = -1;
  if (at == armed) return;
  armed = at;
  struct itimerspec its = {.it_value = {.tv_sec = at / 1000000000, .tv_nsec = at % 1000000000}};
  if (timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0) fail("timerfd_settime: %s", strerror(errno));
}

/* Serve the sockets until `wake` (CLOCK_MONOTONIC ns) or the first event; not at all if it has passed. */
static void wait_io(int64_t wake) {
  int timeout = 0;
  if (wake > mono()) {
    arm(wake);
    timeout = -1;
  }
  struct epoll_event evs[4];
  int n = epoll_wait(epfd, evs, 4, timeout);
  if (n < 0 && errno != EINTR) fail("epoll_wait: %s", strerror(errno));
  for (int k = 0; k < n; k++) {
    uint32_t t = evs[k].data.u32;
    if (t == T_TIMER) {
      uint64_t ticks;
      if (read(tfd, &ticks, sizeof ticks) < 0 && errno != EAGAIN) fail("timerfd read: %s", strerror(errno));
      continue;
    }
    struct conn *c = t == T_SUB ? &sub : &pub;
    if (evs[k].events & EPOLLOUT) on_writable(c);
    if (evs[k].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
      if (!c->connected) on_writable(c); /* reports the connect error */
      on_readable(c);
    }
  }
}

int main(int argc, char **argv) {
  if (argc < 8 || argc > 9) {
    fprintf(stderr, "usage: %s HOST PORT LEVEL RATE PAYLOAD WARMUP_MS DURATION_MS [DUMP_FILE]\n", argv[0]);
    return 2;
  }
  level = atoi(argv[3]);
  rate = atof(argv[4]);
  payload = atol(argv[5]);
  double warmup_ms = atof(argv[6]), duration_ms = atof(argv[7]);
  const char *dump = argc == 9 ? argv[8] : NULL;
  if ((level != 4 && level != 5) || !(rate > 0 && rate <= 1e7) || payload < 16 || payload > 64 * 1024 * 1024 || !(warmup_ms >= 0 && warmup_ms <= 864e5) ||
      !(duration_ms > 0 && duration_ms <= 864e5)) {
    fprintf(stderr, "latency: bad arguments (LEVEL 4|5, RATE > 0, PAYLOAD ≥ 16, WARMUP_MS ≥ 0, DURATION_MS > 0)\n");
    return 2;
  }
  int64_t t_start = mono();
  int64_t deadline = t_start + (int64_t)((warmup_ms + duration_ms) * 1e6) + 30000000000LL;
  prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the generator */
  prctl(PR_SET_TIMERSLACK, 1UL);     /* wake at the slot, not up to 50 µs after it */
  /* BENCH_LATENCY_RT=1: SCHED_FIFO, so other work on the probe's CPU waits for it, not it for
   * that work (a late read counts as latency, a late slot is skipped). Needs CAP_SYS_NICE. */
  const char *rt_env = getenv("BENCH_LATENCY_RT");
  int rt = rt_env != NULL && strcmp(rt_env, "1") == 0;
  if (rt) {
    struct sched_param sp = {.sched_priority = 1};
    if (sched_setscheduler(0, SCHED_FIFO, &sp) < 0) fail("BENCH_LATENCY_RT=1: sched_setscheduler SCHED_FIFO: %s", strerror(errno));
  }
  signal(SIGPIPE, SIG_IGN);

  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
  int gai = getaddrinfo(argv[1], argv[2], &hints, &ai);
  if (gai != 0) fail("%s: %s", argv[1], gai_strerror(gai));

  /* Everything the hot path uses is allocated here. */
  double slots = rate * (warmup_ms + duration_ms) / 1e3 + 16;
  cap = slots > 50e6 ? 50000000 : (long)slots;
  lat_ns = malloc((size_t)cap * sizeof *lat_ns);
  sent_ns = malloc((size_t)cap * sizeof *sent_ns);
  size_t topic_len = strlen(TOPIC);
  size_t body = 2 + topic_len + (level == 5 ? 1 : 0) + (size_t)payload;
  uint8_t *msg = calloc(1, body + 5);
  if (lat_ns == NULL || sent_ns == NULL || msg == NULL) fail("out of memory");
  msg[0] = 0x30; /* PUBLISH, QoS 0, no retain */
  size_t msg_len = 1 + put_varint(msg + 1, (uint32_t)body);
  msg[msg_len++] = 0;
  msg[msg_len++] = (uint8_t)topic_len;
  memcpy(msg + msg_len, TOPIC, topic_len);
  msg_len += topic_len;
  if (level == 5) msg[msg_len++] = 0; /* no properties */
  size_t stamp_at = msg_len;
  msg_len += (size_t)payload;

  epfd = epoll_create1(EPOLL_CLOEXEC);
  tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (epfd < 0 || tfd < 0) fail("epoll/timerfd: %s", strerror(errno));
  struct epoll_event tev = {.events = EPOLLIN, .data.u32 = T_TIMER};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, &tev) < 0) fail("epoll_ctl: %s", strerror(errno));

  open_conn(&sub, ai, "lat-sub", 1 << 16);
  size_t pub_queue = msg_len * 64 > (4u << 20) ? msg_len * 64 : (4u << 20);
  open_conn(&pub, ai, "lat-pub", pub_queue);
  freeaddrinfo(ai);

  while (sub.connack < 0 || pub.connack < 0) {
    if (mono() >= deadline) fail("timed out waiting for CONNACK");
    wait_io(deadline);
  }
  if (max_packet != 0 && msg_len > max_packet) fail("PUBLISH of %zu bytes exceeds the broker's Maximum Packet Size %u", msg_len, max_packet);
  /* Keep alive: no PINGREQ needed within KEEPALIVE (or a shorter Server Keep Alive) / 2. */
  int keepalive = server_keepalive >= 0 ? server_keepalive : KEEPALIVE;
  int64_t ping_every = keepalive > 0 ? (int64_t)keepalive * 500000000LL : 0;
  subscribe();
  while (sub.suback < 0) {
    if (mono() >= deadline) fail("timed out waiting for SUBACK");
    wait_io(deadline);
  }

  int64_t t0 = mono();
  int64_t win_start = t0 + (int64_t)(warmup_ms * 1e6), win_end = win_start + (int64_t)(duration_ms * 1e6);
  int64_t next_ping = ping_every > 0 ? t0 + ping_every : INT64_MAX;
  double ns_per_slot = 1e9 / rate;
  int64_t slot = 0, due = t0;
  uint64_t seq = 0;
  int started = 0;
  struct rusage ru0, ru1;
  int64_t w0 = 0, w1 = 0;
  for (;;) {
    int64_t now = mono();
    if (now >= deadline) fail("timed out");
    if (!started && now >= win_start) {
      getrusage(RUSAGE_SELF, &ru0);
      w0 = now;
      measuring = started = 1;
      printf("{\"window\":\"start\"}\n");
      fflush(stdout);
    }
    if (started && now >= win_end) {
      measuring = 0;
      w1 = mono();
      getrusage(RUSAGE_SELF, &ru1);
      printf("{\"window\":\"end\"}\n");
      fflush(stdout);
      break;
    }
    if (now >= due) {
      put_be64(msg + stamp_at, seq + 1);
      int64_t stamp = mono();
      put_be64(msg + stamp_at + 8, (uint64_t)stamp);
      if (send_bytes(&pub, msg, msg_len)) {
        seq++;
        if (measuring) sent++;
      } else if (measuring) {
        unsent++;
      }
      /* The next slot after now: those missed while late are skipped, not sent in a burst. */
      int64_t late = (int64_t)((double)(stamp - t0) / ns_per_slot);
      if (late > slot && measuring) skipped += late - slot;
      slot = late > slot ? late + 1 : slot + 1;
      due = t0 + (int64_t)((double)slot * ns_per_slot);
    }
    if (now >= next_ping) {
      static const uint8_t pingreq[2] = {0xc0, 0x00};
      send_bytes(&sub, pingreq, 2);
      send_bytes(&pub, pingreq, 2);
      next_ping += ping_every;
    }
    int64_t wake = due;
    if (!started && win_start < wake) wake = win_start;
    if (started && win_end < wake) wake = win_end;
    if (next_ping < wake) wake = next_ping;
    wait_io(wake);
  }

  if (dump != NULL) {
    FILE *f = fopen(dump, "a");
    if (f == NULL) fail("%s: %s", dump, strerror(errno));
    for (long i = 0; i < nsamples; i++) fprintf(f, "%lld %.1f\n", (long long)sent_ns[i], lat_ns[i] / 1e3);
    if (fclose(f) != 0) fail("%s: %s", dump, strerror(errno));
  }
  qsort(lat_ns, (size_t)nsamples, sizeof *lat_ns, cmp_i64);
  printf("{");
  print_percentile("p50_us", 0.5);
  print_percentile("p90_us", 0.9);
  print_percentile("p99_us", 0.99);
  print_percentile("p999_us", 0.999);
  if (nsamples > 0) printf("\"max_us\":%.3f,", lat_ns[nsamples - 1] / 1e3);
  else printf("\"max_us\":null,");
  printf("\"samples\":%ld,\"received\":%ld,\"gaps\":%ld,\"sent\":%ld,\"skipped\":%ld,\"unsent\":%ld,\"overflow\":%ld,\"window_s\":%.6f,"
         "\"cpu_user_us\":%lld,\"cpu_sys_us\":%lld,\"rt\":%d}\n",
         nsamples, received, gaps, sent, skipped, unsent, overflow, (w1 - w0) / 1e9, tv_us(&ru1.ru_utime) - tv_us(&ru0.ru_utime),
         tv_us(&ru1.ru_stime) - tv_us(&ru0.ru_stime), rt);
  fflush(stdout);

  /* DISCONNECT after whatever is still queued; the broker may close either side first. */
  static const uint8_t disconnect[2] = {0xe0, 0x00};
  sub.closing = pub.closing = 1;
  int sub_ok = send_bytes(&sub, disconnect, 2), pub_ok = send_bytes(&pub, disconnect, 2);
  int64_t give_up = mono() + 2000000000LL;
  while (((sub_ok && sub.out_len > 0) || (pub_ok && pub.out_len > 0)) && mono() < give_up) wait_io(give_up);
  close(sub.fd);
  close(pub.fd);
  return 0;
}
