/*
 * Test helper: syscall-probe <probe>...
 *
 * Makes one harmless system call per probe (bad pointers, nonexistent paths or invalid flags, so
 * that nothing changes even without a filter) and prints "<probe> <errno>" (0 on success), so
 * that a test can tell EPERM from the filter apart from the kernel's own answer.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static long probe(const char *name)
{
	if (!strcmp(name, "getpid"))
		return syscall(SYS_getpid);
	if (!strcmp(name, "unshare-user"))
		return syscall(SYS_unshare, CLONE_NEWUSER);
	if (!strcmp(name, "unshare-mnt"))
		return syscall(SYS_unshare, CLONE_NEWNS);
	if (!strcmp(name, "mount"))
		return syscall(SYS_mount, "none", "/nonexistent/mnt", "tmpfs", 0, NULL);
	if (!strcmp(name, "umount2"))
		return syscall(SYS_umount2, "/nonexistent/mnt", 0);
	if (!strcmp(name, "pivot_root"))
		return syscall(SYS_pivot_root, "/nonexistent/a", "/nonexistent/b");
	if (!strcmp(name, "keyctl"))
		return syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -1 /* thread keyring */, 0);
	if (!strcmp(name, "add_key"))
		return syscall(SYS_add_key, "user", NULL, NULL, 0, 0);
	if (!strcmp(name, "request_key"))
		return syscall(SYS_request_key, "user", NULL, NULL, 0);
	if (!strcmp(name, "reboot"))
		return syscall(SYS_reboot, 0, 0, 0, NULL); /* bad magic: EINVAL */
	if (!strcmp(name, "swapon"))
		return syscall(SYS_swapon, "/nonexistent/swap", 0);
	if (!strcmp(name, "init_module"))
		return syscall(SYS_init_module, NULL, 0, "");
	if (!strcmp(name, "kexec_load"))
		return syscall(SYS_kexec_load, 0, 0, NULL, 0xdead0000UL); /* bad flags: EINVAL */
	if (!strcmp(name, "bpf"))
		return syscall(SYS_bpf, -1, NULL, 0);
	if (!strcmp(name, "perf_event_open"))
		return syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0);
	if (!strcmp(name, "clock_settime"))
		return syscall(SYS_clock_settime, 0, NULL);
	if (!strcmp(name, "settimeofday"))
		return syscall(SYS_settimeofday, NULL, NULL); /* both NULL: no-op */
	if (!strcmp(name, "open_by_handle_at"))
		return syscall(SYS_open_by_handle_at, -1, NULL, 0);
	if (!strcmp(name, "setns"))
		return syscall(SYS_setns, -1, 0);
	if (!strcmp(name, "personality-query"))
		return syscall(SYS_personality, 0xffffffffUL) < 0 ? -1 : 0;
	if (!strcmp(name, "personality-bsd"))
		return syscall(SYS_personality, 0x0006 /* PER_BSD */);
	if (!strcmp(name, "userfaultfd"))
		return syscall(SYS_userfaultfd, 0);
	if (!strcmp(name, "ptrace"))
		return syscall(SYS_ptrace, 3 /* PTRACE_PEEKUSER */, 0x7fffffff, 0, 0); /* no such pid */
	if (!strcmp(name, "clone3"))
		return syscall(SYS_clone3, NULL, 0);
	if (!strcmp(name, "clone-newuser") || !strcmp(name, "fork")) {
		unsigned long flags = SIGCHLD | (name[0] == 'c' ? CLONE_NEWUSER : 0);
		long pid = syscall(SYS_clone, flags, NULL, NULL, NULL, NULL);
		if (pid == 0)
			_exit(0);
		if (pid > 0)
			waitpid((pid_t)pid, NULL, 0);
		return pid < 0 ? -1 : 0;
	}
	if (!strcmp(name, "socket-inet") || !strcmp(name, "socket-vsock") || !strcmp(name, "socket-alg")) {
		int family = name[7] == 'i' ? AF_INET : name[7] == 'v' ? 40 : 38;
		long fd = syscall(SYS_socket, family, SOCK_STREAM, 0);
		if (fd >= 0)
			close((int)fd);
		return fd < 0 ? -1 : 0;
	}
	if (!strcmp(name, "nr-1000"))
		return syscall(1000);
	if (!strcmp(name, "nr-467"))
		return syscall(467, -1, NULL, 0, NULL, 0);
	if (!strcmp(name, "x32-getpid"))
		return syscall(0x40000000 | SYS_getpid);
	fprintf(stderr, "unknown probe %s\n", name);
	_exit(2);
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		errno = 0;
		long r = probe(argv[i]);
		printf("%s %d\n", argv[i], r < 0 ? errno : 0);
		fflush(stdout);
	}
	return 0;
}
