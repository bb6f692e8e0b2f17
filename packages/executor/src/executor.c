/*
 * nsinit-executor: runs a syscall program that TypeScript computed.
 *
 * Usage: nsinit-executor SYNC_FD
 *
 * The program arrives on SYNC_FD (a stream socket shared with the Node
 * parent). It is a flat list of ops; each op is a raw syscall whose six
 * arguments are immediates, pointers into the program's data block, or
 * registers holding the result of an earlier op; or one of a few control
 * ops: clone3, a sync point with the parent, exit, and a forward jump. Nothing here knows what
 * a container is: every decision (which mounts, which capabilities, which
 * errors to tolerate) was taken by the TypeScript that built the program.
 *
 * Messages to the parent are fixed 16-byte records (struct msg). A failing
 * op is reported as {MSG_ERROR, op index, errno}; TypeScript maps the index
 * back to the step it built ("mount proc on /proc").
 *
 * No allocation happens after the program is loaded; the data block is
 * relocated once, before the first op runs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROGRAM_MAGIC 0x58435354u /* "TSCX" */
#define PROGRAM_VERSION 1u
#define MAX_OPS 65536u
#define MAX_DATA (64u << 20)
#define NREGS 256u

enum op_kind { OP_SYSCALL = 1, OP_CLONE = 2, OP_SYNC = 3, OP_EXIT = 4, OP_JUMP = 5 };
enum on_error { ERR_FAIL = 0, ERR_IGNORE = 1, ERR_SKIP = 2 };
enum arg_kind { ARG_IMM = 0, ARG_DATA = 1, ARG_REG = 2 };
enum clone_mode { CLONE_REPORT_AND_EXIT = 0, CLONE_WAIT_AND_EXIT = 1 };
enum msg_type { MSG_PID = 1, MSG_SYNC = 2, MSG_ERROR = 3, MSG_EXITED = 4 };

struct header {
  uint32_t magic;
  uint32_t version;
  uint32_t n_ops;
  uint32_t data_len;
  uint32_t n_relocs;
  uint32_t reserved;
};

struct op {
  uint16_t kind;
  uint8_t on_error;
  uint8_t out;         /* register for the result; 0 means "none" */
  int32_t errno_match; /* 0: any errno matches on_error */
  int32_t skip;        /* ops to skip when on_error is ERR_SKIP */
  uint32_t argkinds;   /* 6 x 4 bits, arg i at bits 4i..4i+3 */
  int64_t nr;
  int64_t args[6];
};

struct msg {
  uint32_t type;
  uint32_t index;
  int32_t err;
  int32_t value;
};

_Static_assert(sizeof(struct header) == 24, "header layout");
_Static_assert(sizeof(struct op) == 72, "op layout");
_Static_assert(sizeof(struct msg) == 16, "msg layout");

static int sync_fd = -1;
static long regs[NREGS];

static void send_msg(uint32_t type, uint32_t index, int32_t err, int32_t value) {
  struct msg m = {type, index, err, value};
  const char *p = (const char *)&m;
  size_t left = sizeof m;
  while (left > 0) {
    /* MSG_NOSIGNAL: a parent that went away must not kill us with SIGPIPE. */
    ssize_t n = send(sync_fd, p, left, MSG_NOSIGNAL);
    if (n < 0 && errno == ENOTSOCK) n = write(sync_fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return; /* parent gone: nothing more to say */
    p += n;
    left -= (size_t)n;
  }
}

static int read_full(void *buf, size_t len) {
  char *p = buf;
  while (len > 0) {
    ssize_t n = read(sync_fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Exit codes: 0 done, 120 bad program, 121 parent went away, 122 an op failed. */
static __attribute__((noreturn)) void die(uint32_t index, int err, int code) {
  send_msg(MSG_ERROR, index, err, code);
  _exit(code);
}

int main(int argc, char **argv) {
  if (argc < 2) return 120;
  char *end = NULL;
  long fd = strtol(argv[1], &end, 10);
  if (end == argv[1] || *end != '\0' || fd < 0 || fd > 1 << 20) return 120;
  sync_fd = (int)fd;

  struct header h;
  if (read_full(&h, sizeof h) < 0) _exit(121);
  if (h.magic != PROGRAM_MAGIC || h.version != PROGRAM_VERSION || h.n_ops > MAX_OPS ||
      h.data_len > MAX_DATA || h.n_relocs > MAX_DATA / 8)
    die(0xffffffffu, EINVAL, 120);

  size_t ops_len = (size_t)h.n_ops * sizeof(struct op);
  size_t relocs_len = (size_t)h.n_relocs * sizeof(uint32_t);
  /* 8-byte alignment for the data block, which holds structs and pointers. */
  size_t data_off = (ops_len + 7) & ~(size_t)7;
  char *mem = malloc(data_off + h.data_len + relocs_len + 8);
  if (mem == NULL) die(0xffffffffu, ENOMEM, 120);
  struct op *ops = (struct op *)mem;
  char *data = mem + data_off;
  uint32_t *relocs = (uint32_t *)(data + ((h.data_len + 3) & ~3u));
  if (read_full(ops, ops_len) < 0 || read_full(data, h.data_len) < 0 ||
      read_full(relocs, relocs_len) < 0)
    _exit(121);

  /* Relocate: each reloc names an 8-byte slot holding a data offset. */
  for (uint32_t i = 0; i < h.n_relocs; i++) {
    uint32_t at = relocs[i];
    if (at % 8 != 0 || (uint64_t)at + 8 > h.data_len) die(0xffffffffu, EINVAL, 120);
    uint64_t off;
    memcpy(&off, data + at, 8);
    if (off > h.data_len) die(0xffffffffu, EINVAL, 120);
    uint64_t ptr = (uint64_t)(uintptr_t)(data + off);
    memcpy(data + at, &ptr, 8);
  }
  /* Validate every op once so the loop below cannot read out of bounds. */
  for (uint32_t i = 0; i < h.n_ops; i++) {
    const struct op *o = &ops[i];
    if (o->kind < OP_SYSCALL || o->kind > OP_JUMP || o->on_error > ERR_SKIP || o->skip < 0)
      die(i, EINVAL, 120);
    for (int a = 0; a < 6; a++) {
      unsigned k = (o->argkinds >> (4 * a)) & 0xf;
      if (k == ARG_DATA && (o->args[a] < 0 || (uint64_t)o->args[a] > h.data_len)) die(i, EINVAL, 120);
      if (k == ARG_REG && (o->args[a] < 0 || (uint64_t)o->args[a] >= NREGS)) die(i, EINVAL, 120);
      if (k > ARG_REG) die(i, EINVAL, 120);
    }
  }

  for (uint32_t i = 0; i < h.n_ops; i++) {
    const struct op *o = &ops[i];
    long a[6];
    for (int k = 0; k < 6; k++) {
      switch ((o->argkinds >> (4 * k)) & 0xf) {
      case ARG_DATA: a[k] = (long)(uintptr_t)(data + o->args[k]); break;
      case ARG_REG: a[k] = regs[o->args[k]]; break;
      default: a[k] = (long)o->args[k]; break;
      }
    }

    long ret;
    int err = 0;
    switch (o->kind) {
    case OP_SYSCALL:
      do {
        ret = syscall(o->nr, a[0], a[1], a[2], a[3], a[4], a[5]);
      } while (ret < 0 && errno == EINTR);
      if (ret < 0) err = errno;
      break;
    case OP_CLONE: {
      /* a[0]: struct clone_args *, a[1]: its size, a[2]: clone_mode. */
      ret = syscall(SYS_clone3, a[0], a[1]);
      if (ret < 0) {
        err = errno;
        break;
      }
      if (ret == 0) break; /* child: go on with the next op */
      if (a[2] == CLONE_WAIT_AND_EXIT) {
        send_msg(MSG_PID, i, 0, (int32_t)ret);
        int status = 0;
        pid_t w;
        while ((w = waitpid((pid_t)ret, &status, __WALL)) < 0 && errno == EINTR) {
        }
        /* Not our child (CLONE_PARENT made it a sibling): never report a made-up status. */
        if (w < 0) die(i, errno, 122);
        send_msg(MSG_EXITED, i, 0, status);
        if (WIFEXITED(status)) _exit(WEXITSTATUS(status));
        _exit(128 + WTERMSIG(status));
      }
      send_msg(MSG_PID, i, 0, (int32_t)ret);
      _exit(0);
    }
    case OP_SYNC: {
      send_msg(MSG_SYNC, i, 0, (int32_t)a[0]);
      int32_t reply;
      if (read_full(&reply, sizeof reply) < 0) _exit(121);
      if (reply != 0) _exit((reply & 0xff) != 0 ? (reply & 0xff) : 1);
      ret = 0;
      break;
    }
    case OP_EXIT:
      _exit((int)a[0]);
    case OP_JUMP:
      i += (uint32_t)o->skip;
      continue;
    default:
      die(i, EINVAL, 120);
    }

    if (err != 0) {
      if (o->errno_match == 0 || o->errno_match == err) {
        if (o->on_error == ERR_IGNORE) {
          if (o->out) regs[o->out] = -err;
          continue;
        }
        if (o->on_error == ERR_SKIP) {
          if (o->out) regs[o->out] = -err;
          i += (uint32_t)o->skip;
          continue;
        }
      }
      die(i, err, 122);
    }
    if (o->out) regs[o->out] = ret;
  }
  _exit(0);
}
