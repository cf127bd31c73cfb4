// mongrel2_handler: the WebSocket echo handler for the Mongrel2 baseline, in C on libzmq's C API.
//
//   mongrel2_handler SEND_SPEC RECV_SPEC      # e.g. tcp://127.0.0.1:9997 tcp://127.0.0.1:9996
//
// Mongrel2 (1.12) PUSHes each request to handlers as "UUID CONN_ID PATH HEADERS BODY", headers
// and body as tnetstrings. A WebSocket upgrade comes as METHOD "WEBSOCKET_HANDSHAKE" with the
// Sec-WebSocket-Accept value (Mongrel2 computes it) as the body; the handler answers the 101
// itself. Each frame then comes as METHOD "WEBSOCKET", its first byte in the FLAGS header (hex)
// and its payload, unmasked, as the body; disconnects as METHOD "JSON". The handler's answers go
// on a PUB that Mongrel2's SUB reads: "UUID LEN:CONN_ID, " then the raw bytes for the client,
// which for WebSocket means a whole frame the handler builds; an empty body closes.
// Echo: text and binary frames back as they came, ping answered pong, close answered close.
// One thread, one buffer: no allocation per message.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

struct slice {
  const char* p;
  size_t n;
};

// One tnetstring "LEN:DATA" + type char at *pos; returns the data, moves past it.
static int tnet(const char* buf, size_t len, size_t* pos, struct slice* out, char* type) {
  size_t i = *pos, n = 0;
  while (i < len && buf[i] >= '0' && buf[i] <= '9') n = n * 10 + (size_t)(buf[i++] - '0');
  if (i >= len || buf[i] != ':' || i + 1 + n >= len) return -1;
  out->p = buf + i + 1;
  out->n = n;
  *type = buf[i + 1 + n];
  *pos = i + 2 + n;
  return 0;
}

static int eq(struct slice s, const char* lit) { return s.n == strlen(lit) && memcmp(s.p, lit, s.n) == 0; }

static char out[1 << 21];

// "UUID LEN:ID, " then the body.
static void reply(void* pub, struct slice uuid, struct slice id, const void* body, size_t n,
                  const void* head, size_t hn) {
  int k = snprintf(out, 64 + uuid.n, "%.*s %zu:%.*s, ", (int)uuid.n, uuid.p, id.n, (int)id.n, id.p);
  if ((size_t)k + hn + n > sizeof out) return;
  memcpy(out + k, head, hn);
  memcpy(out + k + hn, body, n);
  zmq_send(pub, out, (size_t)k + hn + n, 0);
}

static void reply_frame(void* pub, struct slice uuid, struct slice id, int opcode, struct slice body) {
  unsigned char h[10];
  size_t hn;
  h[0] = (unsigned char)(0x80 | opcode);
  if (body.n < 126) {
    h[1] = (unsigned char)body.n;
    hn = 2;
  } else if (body.n < 65536) {
    h[1] = 126;
    h[2] = (unsigned char)(body.n >> 8);
    h[3] = (unsigned char)body.n;
    hn = 4;
  } else {
    h[1] = 127;
    for (int i = 0; i < 8; ++i) h[2 + i] = (unsigned char)((unsigned long long)body.n >> (56 - 8 * i));
    hn = 10;
  }
  reply(pub, uuid, id, body.p, body.n, h, hn);
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: mongrel2_handler SEND_SPEC RECV_SPEC\n");
    return 2;
  }
  void* ctx = zmq_ctx_new();
  void* pull = zmq_socket(ctx, ZMQ_PULL);
  void* pub = zmq_socket(ctx, ZMQ_PUB);
  int hwm = 100000;
  zmq_setsockopt(pull, ZMQ_RCVHWM, &hwm, sizeof hwm);
  zmq_setsockopt(pub, ZMQ_SNDHWM, &hwm, sizeof hwm);
  const char* ident = "bench-echo-handler";
  zmq_setsockopt(pub, ZMQ_ROUTING_ID, ident, strlen(ident));
  if (zmq_connect(pull, argv[1]) || zmq_connect(pub, argv[2])) {
    fprintf(stderr, "mongrel2_handler: connect: %s\n", zmq_strerror(zmq_errno()));
    return 1;
  }
  zmq_msg_t msg;
  zmq_msg_init(&msg);
  for (;;) {
    if (zmq_msg_recv(&msg, pull, 0) < 0) {
      if (zmq_errno() == EINTR) continue;
      break;
    }
    const char* buf = zmq_msg_data(&msg);
    size_t len = zmq_msg_size(&msg), pos = 0;
    struct slice part[3];
    for (int i = 0; i < 3; ++i) {  // UUID, CONN_ID, PATH, space-separated
      const char* sp = memchr(buf + pos, ' ', len - pos);
      if (!sp) goto next;
      part[i].p = buf + pos;
      part[i].n = (size_t)(sp - (buf + pos));
      pos = (size_t)(sp - buf) + 1;
    }
    struct slice headers, body, key, val, method = {0}, flags = {0};
    char t;
    if (tnet(buf, len, &pos, &headers, &t) || t != '}' || tnet(buf, len, &pos, &body, &t)) goto next;
    for (size_t hp = 0; hp < headers.n;) {
      if (tnet(headers.p, headers.n, &hp, &key, &t) || tnet(headers.p, headers.n, &hp, &val, &t)) break;
      if (eq(key, "METHOD")) method = val;
      else if (eq(key, "FLAGS")) flags = val;
    }
    if (eq(method, "WEBSOCKET_HANDSHAKE")) {
      static const char pre[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                "Connection: Upgrade\r\nSec-WebSocket-Accept: ";
      char resp[256];
      int n = snprintf(resp, sizeof resp, "%s%.*s\r\n\r\n", pre, (int)body.n, body.p);
      reply(pub, part[0], part[1], resp, (size_t)n, "", 0);
    } else if (eq(method, "WEBSOCKET") && flags.n) {
      char fl[16];
      snprintf(fl, sizeof fl, "%.*s", (int)flags.n, flags.p);
      int opcode = (int)(strtol(fl, NULL, 16) & 0xf);
      if (opcode == 8) {  // close: answered, then the connection ends
        reply_frame(pub, part[0], part[1], 8, body);
        reply(pub, part[0], part[1], "", 0, "", 0);
      } else if (opcode == 9) {
        reply_frame(pub, part[0], part[1], 10, body);
      } else if (opcode == 1 || opcode == 2 || opcode == 0) {
        reply_frame(pub, part[0], part[1], opcode, body);
      }
    }
  next:;
  }
  zmq_msg_close(&msg);
  return 0;
}
