#include "process_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <pthread.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif

/* What the child writes on the exec-error pipe when a step fails: the step and errno. */
typedef struct spawn_failure {
    int step;
    int err;
} spawn_failure;

static const char *const step_names[] = {
    "fork", "setsid", "prctl", "getppid", "setrlimit", "open /dev/null", "dup2", "sigprocmask", "execve",
};
enum { STEP_FORK, STEP_SETSID, STEP_PRCTL, STEP_PARENT, STEP_RLIMIT, STEP_DEVNULL, STEP_DUP2, STEP_SIGMASK, STEP_EXEC };

/* Only async-signal-safe calls below until execve. */
static void fail_child(int error_fd, int step) {
    spawn_failure failure = { step, errno };
    ssize_t ignored = write(error_fd, &failure, sizeof failure);
    (void)ignored;
    _exit(127);
}

/* Moves `fd` to a descriptor >= 10 so the dup2 targets 0..3 cannot clobber it. */
static int lift(int fd, int error_fd) {
    if (fd < 0 || fd >= 10) return fd;
    int lifted = fcntl(fd, F_DUPFD, 10);
    if (lifted < 0) fail_child(error_fd, STEP_DUP2);
    return lifted;
}

static void close_from(int lowest, int keep) {
    /* close_range(2) where the kernel has it; otherwise a bounded loop (no /proc reading:
       opendir allocates). */
    if (keep < lowest) {
        if (syscall(SYS_close_range, (unsigned)lowest, ~0U, 0) == 0) return;
    } else {
        if (keep > lowest && syscall(SYS_close_range, (unsigned)lowest, (unsigned)(keep - 1), 0) != 0) goto loop;
        if (syscall(SYS_close_range, (unsigned)(keep + 1), ~0U, 0) == 0) return;
    }
loop:;
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 65536) max = 65536;
    for (int fd = lowest; fd < max; fd++) if (fd != keep) close(fd);
}

pid_t sudosos_spawn(const sudosos_spawn_request *request, int *spawn_errno, const char **failed_step) {
    int error_pipe[2];
    if (pipe2(error_pipe, O_CLOEXEC) != 0) {
        *spawn_errno = errno;
        *failed_step = "pipe";
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        *spawn_errno = errno;
        *failed_step = step_names[STEP_FORK];
        close(error_pipe[0]);
        close(error_pipe[1]);
        return -1;
    }
    if (pid == 0) {
        int error_fd = error_pipe[1];
        close(error_pipe[0]);
        if (setsid() < 0) fail_child(error_fd, STEP_SETSID);
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail_child(error_fd, STEP_PRCTL);
        /* The parent may have died before prctl: then we were re-parented already. */
        if (getppid() != request->parent_pid) { errno = ESRCH; fail_child(error_fd, STEP_PARENT); }

        int out = lift(request->stdout_fd, error_fd);
        int err = lift(request->stderr_fd, error_fd);
        int result = lift(request->result_fd, error_fd);
        int config = lift(request->config_fd, error_fd);
        error_fd = lift(error_fd, error_fd);
        int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (null_fd < 0) fail_child(error_fd, STEP_DEVNULL);
        if (dup2(null_fd, 0) < 0) fail_child(error_fd, STEP_DUP2);
        if (dup2(out, 1) < 0) fail_child(error_fd, STEP_DUP2);
        if (dup2(err, 2) < 0) fail_child(error_fd, STEP_DUP2);
        if (result >= 0) {
            if (dup2(result, SUDOSOS_RESULT_FD) < 0) fail_child(error_fd, STEP_DUP2);
        } else {
            close(SUDOSOS_RESULT_FD);
        }
        if (config >= 0) {
            if (dup2(config, SUDOSOS_CONFIG_FD) < 0) fail_child(error_fd, STEP_DUP2);
        } else {
            close(SUDOSOS_CONFIG_FD);
        }
        /* Everything else goes, except the exec-error pipe (O_CLOEXEC: closed by a good exec). */
        close_from(SUDOSOS_CONFIG_FD + 1, error_fd);
        if (fcntl(error_fd, F_SETFD, FD_CLOEXEC) != 0) fail_child(error_fd, STEP_DUP2);

        /* Limits last: RLIMIT_NOFILE below the parent's descriptor numbers would make the
           dup2 / open calls above fail. */
        struct rlimit limit;
        if (request->limit_address_space) {
            limit.rlim_cur = limit.rlim_max = request->limit_address_space;
            if (setrlimit(RLIMIT_AS, &limit) != 0) fail_child(error_fd, STEP_RLIMIT);
        }
        if (request->limit_cpu_seconds) {
            limit.rlim_cur = request->limit_cpu_seconds;
            limit.rlim_max = request->limit_cpu_seconds + 5; /* SIGXCPU first, SIGKILL later */
            if (setrlimit(RLIMIT_CPU, &limit) != 0) fail_child(error_fd, STEP_RLIMIT);
        }
        if (request->limit_open_files) {
            limit.rlim_cur = limit.rlim_max = request->limit_open_files;
            if (setrlimit(RLIMIT_NOFILE, &limit) != 0) fail_child(error_fd, STEP_RLIMIT);
        }

        /* Handlers do not survive exec, but ignored signals and the mask do: reset both. */
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        for (int sig = 1; sig < NSIG; sig++) {
            if (sig == SIGKILL || sig == SIGSTOP) continue;
            sigaction(sig, &dfl, NULL);
        }
        sigset_t empty;
        sigemptyset(&empty);
        if (sigprocmask(SIG_SETMASK, &empty, NULL) != 0) fail_child(error_fd, STEP_SIGMASK);

        execve(request->path, request->argv, request->envp);
        fail_child(error_fd, STEP_EXEC);
    }
    /* Parent: a successful exec closes the pipe (EOF, 0 bytes); a failure sends a record. */
    close(error_pipe[1]);
    spawn_failure failure;
    ssize_t got;
    do {
        got = read(error_pipe[0], &failure, sizeof failure);
    } while (got < 0 && errno == EINTR);
    close(error_pipe[0]);
    if (got == (ssize_t)sizeof failure) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        *spawn_errno = failure.err;
        *failed_step = (failure.step >= 0 && failure.step <= STEP_EXEC) ? step_names[failure.step] : "unknown";
        return -1;
    }
    return pid;
}

int sudosos_pidfd_open(pid_t pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

pid_t sudosos_reap(pid_t pid, int *status, double *cpu_seconds, uint64_t *max_rss_bytes) {
    struct rusage usage;
    memset(&usage, 0, sizeof usage);
    pid_t got;
    do {
        got = wait4(pid, status, WNOHANG, &usage);
    } while (got < 0 && errno == EINTR);
    if (got > 0) {
        *cpu_seconds = (double)usage.ru_utime.tv_sec + (double)usage.ru_utime.tv_usec / 1e6
            + (double)usage.ru_stime.tv_sec + (double)usage.ru_stime.tv_usec / 1e6;
        *max_rss_bytes = (uint64_t)usage.ru_maxrss * 1024u; /* Linux reports KiB */
    }
    return got;
}

int sudosos_has_exited(pid_t pid) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    int rc;
    do {
        rc = waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0) return -1;
    return info.si_pid == pid ? 1 : 0;
}

int sudosos_wifexited(int status) { return WIFEXITED(status); }
int sudosos_wexitstatus(int status) { return WEXITSTATUS(status); }
int sudosos_wifsignaled(int status) { return WIFSIGNALED(status); }
int sudosos_wtermsig(int status) { return WTERMSIG(status); }

static volatile sig_atomic_t signal_write_fd = -1;

static void on_signal(int sig) {
    int saved = errno;
    unsigned char byte = (unsigned char)sig;
    if (signal_write_fd >= 0) {
        ssize_t ignored = write(signal_write_fd, &byte, 1);
        (void)ignored;
    }
    errno = saved;
}

int sudosos_install_signal_pipe(int write_fd) {
    signal_write_fd = write_fd;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_signal;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    int signals[] = { SIGTERM, SIGINT, SIGHUP };
    for (unsigned i = 0; i < sizeof signals / sizeof signals[0]; i++) {
        if (sigaction(signals[i], &action, NULL) != 0) return -1;
    }
    /* Unblock them in this thread, in case a parent left them blocked. */
    sigset_t set;
    sigemptyset(&set);
    for (unsigned i = 0; i < sizeof signals / sizeof signals[0]; i++) sigaddset(&set, signals[i]);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

int sudosos_pipe(int fds[2], int nonblocking_read) {
    if (pipe2(fds, O_CLOEXEC) != 0) return -1;
    if (nonblocking_read) {
        int flags = fcntl(fds[0], F_GETFL);
        if (flags < 0 || fcntl(fds[0], F_SETFL, flags | O_NONBLOCK) != 0) return -1;
    }
    return 0;
}

int sudosos_set_parent_death_signal(void) {
    return prctl(PR_SET_PDEATHSIG, SIGKILL);
}

uint64_t sudosos_monotonic_usec(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_nsec / 1000u;
}
