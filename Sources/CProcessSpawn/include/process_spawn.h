#ifndef SUDOSOS_PROCESS_SPAWN_H
#define SUDOSOS_PROCESS_SPAWN_H
/*
 * Spawning isolated children for the supervisor: fork + async-signal-safe set-up + exec.
 *
 * The supervisor is multi-threaded, so between fork() and execve() the child may only make
 * async-signal-safe calls: no malloc, no locks, no Swift. Everything the child needs (argv,
 * envp, limits, descriptors) is prepared by the parent before fork().
 */
#include <sys/types.h>
#include <sys/resource.h>
#include <stdint.h>

/* The result pipe's write end is always this descriptor in the child. */
#define SUDOSOS_RESULT_FD 3
/* The read end of the configuration pipe (the child's configuration as JSON, secrets
   included: never argv or the environment). */
#define SUDOSOS_CONFIG_FD 4

/* What the child should look like. All descriptors are owned by the caller. */
typedef struct sudosos_spawn_request {
    const char *path;            /* executable, e.g. /proc/self/exe */
    char *const *argv;           /* NULL-terminated */
    char *const *envp;           /* NULL-terminated: the child's whole environment */
    int stdout_fd;               /* write end for the child's stdout */
    int stderr_fd;               /* write end for the child's stderr */
    int result_fd;               /* write end of the result pipe, becomes SUDOSOS_RESULT_FD */
    int config_fd;               /* read end of the configuration pipe, becomes SUDOSOS_CONFIG_FD; -1: none */
    /* rlimits; 0 = leave unchanged */
    uint64_t limit_address_space;
    uint64_t limit_cpu_seconds;
    uint64_t limit_open_files;
    pid_t parent_pid;            /* the supervisor's pid, for the PDEATHSIG race check */
} sudosos_spawn_request;

/*
 * Spawns the child: new session (so its own process group, pgid == pid), PR_SET_PDEATHSIG
 * SIGKILL plus a parent check, rlimits, stdin from /dev/null, stdout/stderr/result/config on the
 * given descriptors, every other descriptor closed, default signal dispositions and an
 * empty signal mask, then execve.
 *
 * Returns the child's pid (> 0). On failure returns -1 and sets *spawn_errno; *failed_step
 * names the step that failed ("fork", "setsid", "setrlimit", "dup2", "execve", ...), so
 * "could not spawn" is told apart from "ran and failed" (the exec-error pipe).
 */
pid_t sudosos_spawn(const sudosos_spawn_request *request, int *spawn_errno, const char **failed_step);

/* pidfd_open(2): a descriptor that becomes readable when the process exits; -1 on error. */
int sudosos_pidfd_open(pid_t pid);

/* wait4(2) without blocking for `pid`: returns pid when reaped, 0 when still running, -1 on
 * error. Fills the raw status and the child's CPU seconds and max RSS (bytes). */
pid_t sudosos_reap(pid_t pid, int *status, double *cpu_seconds, uint64_t *max_rss_bytes);

/* 1 if `pid` has exited (still a zombie, not reaped: waitid WNOWAIT), 0 if not, -1 on error. */
int sudosos_has_exited(pid_t pid);

int sudosos_wifexited(int status);
int sudosos_wexitstatus(int status);
int sudosos_wifsignaled(int status);
int sudosos_wtermsig(int status);

/*
 * Signal self-pipe: installs handlers for SIGTERM, SIGINT, SIGHUP that write the signal
 * number as one byte to `write_fd` (non-blocking). SIGPIPE is ignored.
 */
int sudosos_install_signal_pipe(int write_fd);

/* pipe2 with O_CLOEXEC; non-blocking read end when `nonblocking_read`. */
int sudosos_pipe(int fds[2], int nonblocking_read);

/* prctl(PR_SET_PDEATHSIG, SIGKILL) for the calling process (the worker re-arms it). */
int sudosos_set_parent_death_signal(void);

/* CLOCK_MONOTONIC in microseconds (for MONOTONIC_USEC and loop timing). */
uint64_t sudosos_monotonic_usec(void);

#endif
