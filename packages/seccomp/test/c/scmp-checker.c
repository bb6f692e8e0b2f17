/*
 * Test helper: builds seccomp filters with libseccomp and prints the BPF that
 * seccomp_export_bpf() produces, so that the tests can compare it with the
 * programs of @tsc/seccomp. Reads a line format on stdin:
 *
 *   profile
 *   arch x86_64|aarch64
 *   optimize 1|2
 *   default <action, hex>
 *   badarch <action, hex>
 *   rule <action, hex> <syscall> <n> [<arg> <op> <datum_a> <datum_b>]...
 *   end
 *
 * <syscall> is a number (the native x86_64 number, used as is) or a name
 * (resolved with seccomp_syscall_resolve_name, i.e. natively; libseccomp
 * translates it to the filter's architecture). <op> is the numeric
 * enum scmp_compare (NE 1, LT 2, LE 3, EQ 4, GE 5, GT 6, MASKED_EQ 7), datums
 * are decimal 64-bit values. For each profile one line is printed:
 *
 *   ok <hex of the sock_filter array> <hex of the seccomp_export_pfc text>
 *   err <rule number, from 0> <negative errno>
 *   hang -1 0          (libseccomp did not finish within 2 s)
 *
 * With the single argument "resolve <arch>" it instead reads syscall names and
 * prints "<name> <number on arch>" (negative when libseccomp does not know it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

static uint32_t arch_token(const char *name)
{
	if (strcmp(name, "x86_64") == 0)
		return SCMP_ARCH_X86_64;
	if (strcmp(name, "aarch64") == 0)
		return SCMP_ARCH_AARCH64;
	fprintf(stderr, "unknown arch %s\n", name);
	exit(2);
}

static int resolve(const char *arch)
{
	char line[256];
	uint32_t token = arch_token(arch);
	while (fgets(line, sizeof(line), stdin) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '\0')
			continue;
		printf("%s %d\n", line, seccomp_syscall_resolve_name_arch(token, line));
	}
	return 0;
}

/* The bytes that export() writes, as a malloc'd hex string; NULL with *rc set on failure. */
static char *dump(scmp_filter_ctx ctx, int (*export)(const scmp_filter_ctx, int), int *rc)
{
	int fd = memfd_create("out", 0);
	off_t len;
	unsigned char *buf;
	char *hex;

	if (fd < 0) {
		*rc = -errno;
		return NULL;
	}
	if ((*rc = export(ctx, fd)) != 0) {
		close(fd);
		return NULL;
	}
	len = lseek(fd, 0, SEEK_END);
	buf = malloc((size_t)len + 1);
	hex = malloc((size_t)len * 2 + 1);
	if (buf == NULL || hex == NULL || pread(fd, buf, (size_t)len, 0) != len) {
		*rc = -EIO;
		close(fd);
		return NULL;
	}
	close(fd);
	for (off_t j = 0; j < len; j++)
		sprintf(hex + 2 * j, "%02x", buf[j]);
	hex[len * 2] = '\0';
	free(buf);
	return hex;
}

struct profile {
	uint32_t arch;
	int optimize;
	uint32_t def;
	uint32_t badarch;
	char **rules;
	size_t nrules, cap;
};

static void run(struct profile *p)
{
	scmp_filter_ctx ctx = seccomp_init(p->def);
	int rc;
	size_t i;

	if (ctx == NULL) {
		printf("err -1 %d\n", -ENOMEM);
		return;
	}
	if (p->arch != seccomp_arch_native()) {
		if ((rc = seccomp_arch_add(ctx, p->arch)) != 0 ||
		    (rc = seccomp_arch_remove(ctx, SCMP_ARCH_NATIVE)) != 0) {
			printf("err -1 %d\n", rc);
			goto out;
		}
	}
	if ((rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, p->badarch)) != 0 ||
	    (rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, p->optimize)) != 0) {
		printf("err -1 %d\n", rc);
		goto out;
	}
	for (i = 0; i < p->nrules; i++) {
		struct scmp_arg_cmp args[6];
		char sys[128];
		unsigned int action, n, k;
		int nr, off, used;
		const char *s = p->rules[i];

		if (sscanf(s, "%x %127s %u%n", &action, sys, &n, &off) != 3 || n > 6) {
			fprintf(stderr, "bad rule: %s\n", s);
			exit(2);
		}
		s += off;
		for (k = 0; k < n; k++) {
			unsigned int arg, op;
			unsigned long long a, b;
			if (sscanf(s, "%u %u %llu %llu%n", &arg, &op, &a, &b, &used) != 4) {
				fprintf(stderr, "bad args: %s\n", p->rules[i]);
				exit(2);
			}
			s += used;
			args[k].arg = arg;
			args[k].op = (enum scmp_compare)op;
			args[k].datum_a = a;
			args[k].datum_b = b;
		}
		if (sys[0] >= '0' && sys[0] <= '9')
			nr = atoi(sys);
		else {
			nr = seccomp_syscall_resolve_name(sys);
			if (nr == __NR_SCMP_ERROR) {
				printf("err %zu %d\n", i, -ENOENT);
				goto out;
			}
		}
		rc = seccomp_rule_add_array(ctx, action, nr, n, args);
		if (rc != 0) {
			printf("err %zu %d\n", i, rc);
			goto out;
		}
	}
	{
		char *bpf = dump(ctx, seccomp_export_bpf, &rc);
		char *pfc = bpf ? dump(ctx, seccomp_export_pfc, &rc) : NULL;
		if (pfc == NULL)
			printf("err -1 %d\n", rc);
		else
			printf("ok %s %s\n", bpf, pfc);
		free(bpf);
		free(pfc);
	}
out:
	seccomp_release(ctx);
}

static sigjmp_buf deadline;

static void on_alarm(int sig)
{
	(void)sig;
	siglongjmp(deadline, 1);
}

int main(int argc, char **argv)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	struct profile p;

	if (argc == 3 && strcmp(argv[1], "resolve") == 0)
		return resolve(argv[2]);

	/* Let libseccomp probe the kernel once, before the forks (the children inherit the result). */
	seccomp_api_get();
	signal(SIGALRM, on_alarm);
	seccomp_release(seccomp_init(SCMP_ACT_ALLOW));
	memset(&p, 0, sizeof(p));
	while ((len = getline(&line, &cap, stdin)) > 0) {
		line[strcspn(line, "\n")] = '\0';
		if (strcmp(line, "profile") == 0) {
			for (size_t i = 0; i < p.nrules; i++)
				free(p.rules[i]);
			p.nrules = 0;
			p.arch = seccomp_arch_native();
			p.optimize = 1;
			p.def = SCMP_ACT_ALLOW;
			p.badarch = SCMP_ACT_KILL;
		} else if (strncmp(line, "arch ", 5) == 0) {
			p.arch = arch_token(line + 5);
		} else if (strncmp(line, "optimize ", 9) == 0) {
			p.optimize = atoi(line + 9);
		} else if (strncmp(line, "default ", 8) == 0) {
			p.def = (uint32_t)strtoul(line + 8, NULL, 16);
		} else if (strncmp(line, "badarch ", 8) == 0) {
			p.badarch = (uint32_t)strtoul(line + 8, NULL, 16);
		} else if (strncmp(line, "rule ", 5) == 0) {
			if (p.nrules == p.cap) {
				p.cap = p.cap ? p.cap * 2 : 64;
				p.rules = realloc(p.rules, p.cap * sizeof(*p.rules));
			}
			p.rules[p.nrules++] = strdup(line + 5);
		} else if (strcmp(line, "end") == 0) {
			/* libseccomp can loop forever on some rule sets: give up after 2 s (leaking
			 * whatever it had allocated). */
			if (sigsetjmp(deadline, 1) == 0) {
				alarm(2);
				run(&p);
				alarm(0);
			} else {
				printf("hang -1 0\n");
			}
			fflush(stdout);
		} else if (line[0] != '\0') {
			fprintf(stderr, "bad line: %s\n", line);
			return 2;
		}
	}
	free(line);
	return 0;
}
