/*
 * Test helper: seccomp-exec <filter file> <flags> <command> [args...]
 *
 * Loads the classic BPF program in <filter file> (struct sock_filter[], as compileSeccomp
 * returns it) with seccomp(SECCOMP_SET_MODE_FILTER, <flags>) after PR_SET_NO_NEW_PRIVS, then
 * execs <command>. Exits 125 with a message if anything before the exec fails.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct sock_fprog prog;
	struct stat st;
	int fd;

	if (argc < 4) {
		fprintf(stderr, "usage: %s <filter> <flags> <command> [args...]\n", argv[0]);
		return 125;
	}
	fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0 || st.st_size == 0 || st.st_size % 8 != 0) {
		fprintf(stderr, "seccomp-exec: bad filter file %s\n", argv[1]);
		return 125;
	}
	prog.len = (unsigned short)(st.st_size / 8);
	prog.filter = malloc((size_t)st.st_size);
	if (prog.filter == NULL || read(fd, prog.filter, (size_t)st.st_size) != st.st_size) {
		fprintf(stderr, "seccomp-exec: cannot read %s\n", argv[1]);
		return 125;
	}
	close(fd);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
		fprintf(stderr, "seccomp-exec: PR_SET_NO_NEW_PRIVS: %s\n", strerror(errno));
		return 125;
	}
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, strtoul(argv[2], NULL, 0), &prog) != 0) {
		fprintf(stderr, "seccomp-exec: seccomp: %s\n", strerror(errno));
		return 125;
	}
	execvp(argv[3], argv + 3);
	fprintf(stderr, "seccomp-exec: exec %s: %s\n", argv[3], strerror(errno));
	return 127;
}
