/* A function-pool slot in C: the same program as slot.py (read its docstring for the
 * protocol), for the pool to use where a C compiler is available (slot_program.py builds it
 * once per machine and checks it before use).
 *
 * Why it exists: per task, slot.py spends ~0.25 ms of CPU on Python around the kernel's
 * work (decoding the job, building C arrays through ctypes, encoding two reports); this
 * program spends ~0.09 ms, all of it posix_spawn, wait4 and pipe I/O. On a machine whose
 * cores the tasks themselves keep busy, that CPU is wall time.
 *
 * Jobs (stdin) and reports (stdout) are frames: a 4-byte big-endian length, then fields,
 * each ended by a NUL byte.
 *   job     job_id exe cwd log_path argc argv[0..argc-1] env_entry...
 *   report  "S" job_id pid started_at | "X" job_id exit_code maxrss_kb ended_at | "E" job_id message
 *
 * With UPDRAFT_SLOT_CPU and UPDRAFT_TASK_CPUS set (see runner/affinity.py), the slot keeps to
 * that one CPU and gives each task it starts the listed CPUs the moment it has started.
 *
 * The slot is a child subreaper, as slot.py is: what a task leaves running (setsid, a double
 * fork) comes back to it, and is killed and reaped before the task's exit is reported.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_FRAME (64u << 20)

/* 1: read n bytes; 0: end of input (the pipe closed, also mid-frame); -1: error */
static int read_full(int fd, char *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r == 0) return 0;
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        got += (size_t)r;
    }
    return 1;
}

static int write_full(int fd, const char *buf, size_t n) {
    while (n) {
        ssize_t w = write(fd, buf, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

/* One report frame to stdout; -1 when the engine is gone (the pipe broke). */
static int report(const char *const fields[], int n) {
    char buf[8192];
    size_t len = 4;
    for (int i = 0; i < n; i++) {
        size_t l = strlen(fields[i]);
        if (len + l + 1 > sizeof buf) l = sizeof buf - len - 1; /* only a long message is cut */
        memcpy(buf + len, fields[i], l);
        len += l;
        buf[len++] = '\0';
    }
    uint32_t head = htonl((uint32_t)(len - 4));
    memcpy(buf, &head, 4);
    return write_full(1, buf, len);
}

static long self_peak_kb;

/* This process's peak resident set (VmHWM: its own memory since exec, not the peak that
   getrusage reports, which includes the process it was spawned from). */
static long own_peak_kb(void) {
    long kb = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (f) {
        char line[256];
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "VmHWM: %ld kB", &kb) == 1) break;
        fclose(f);
    }
    if (kb < 0) { /* no /proc: the larger figure, which errs towards "unknown" */
        struct rusage me;
        getrusage(RUSAGE_SELF, &me);
        kb = me.ru_maxrss;
    }
    return kb;
}

/* The pids listed in /proc/<pid>/task/<pid>/children (its main thread's children), in a
   malloc'ed array (*out; NULL when none); returns how many. */
static size_t children_of(pid_t pid, pid_t **out) {
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)pid, (int)pid);
    *out = NULL;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return 0;
    size_t n = 0, cap = 0;
    long cur = -1;
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        for (ssize_t i = 0; i < r; i++) {
            if (buf[i] >= '0' && buf[i] <= '9') {
                cur = (cur < 0 ? 0 : cur * 10) + (buf[i] - '0');
                continue;
            }
            if (cur < 0) continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                pid_t *grown = realloc(*out, cap * sizeof **out);
                if (!grown) break;
                *out = grown;
            }
            if (n < cap) (*out)[n++] = (pid_t)cur;
            cur = -1;
        }
    }
    if (cur >= 0) { /* the file ends without a separator */
        pid_t *grown = realloc(*out, (n + 1) * sizeof **out);
        if (grown) { *out = grown; (*out)[n++] = (pid_t)cur; }
    }
    close(fd);
    return n;
}

/* SIGKILL `pid` and its descendants (those still under it; the rest come back to this slot). */
static void kill_tree(pid_t pid, int depth) {
    kill(pid, SIGKILL);
    if (depth > 64) return;
    pid_t *kids;
    size_t n = children_of(pid, &kids);
    for (size_t i = 0; i < n; i++) kill_tree(kids[i], depth + 1);
    free(kids);
}

/* This slot is a child subreaper: once its task has exited, every child it still has is
   something the task left running (a daemon in a session of its own, a double fork). Kill
   each with its descendants and reap them, round after round, until none is left; returns
   the largest peak RSS (KiB) among them (see sweep_orphans in runner/procs.py). */
static long sweep_orphans(void) {
    long peak = 0;
    for (int round = 0; round < 1000; round++) {
        pid_t *kids;
        size_t n = children_of(getpid(), &kids);
        if (n == 0) {
            free(kids);
            break;
        }
        for (size_t i = 0; i < n; i++) kill_tree(kids[i], 0);
        for (size_t i = 0; i < n; i++) {
            int st;
            struct rusage ru;
            pid_t got;
            while ((got = wait4(kids[i], &st, 0, &ru)) < 0 && errno == EINTR) {}
            if (got > 0 && ru.ru_maxrss > peak) peak = ru.ru_maxrss;
        }
        free(kids);
    }
    return peak;
}

static cpu_set_t task_cpus; /* given to each task when this slot keeps to one CPU */
static int pinned;

/* "0,1,4" -> the set; 0 when empty or malformed */
static int parse_cpus(const char *s, cpu_set_t *set) {
    CPU_ZERO(set);
    int n = 0;
    while (*s) {
        char *end;
        long cpu = strtol(s, &end, 10);
        if (end == s || cpu < 0 || cpu >= CPU_SETSIZE || (*end && *end != ',')) return 0;
        CPU_SET((int)cpu, set);
        n++;
        s = *end ? end + 1 : end;
    }
    return n;
}

/* Keep to UPDRAFT_SLOT_CPU when both variables are set and valid. */
static void pin_from_env(void) {
    const char *own = getenv("UPDRAFT_SLOT_CPU"), *tasks = getenv("UPDRAFT_TASK_CPUS");
    cpu_set_t one;
    if (!own || !tasks || !parse_cpus(own, &one) || !parse_cpus(tasks, &task_cpus)) return;
    pinned = sched_setaffinity(0, sizeof one, &one) == 0;
}

/* Start one job, report its start and its exit. Returns -1 when the engine is gone. */
static int run_job(char **f, size_t nf, const posix_spawnattr_t *attr) {
    const char *job = f[0], *exe = f[1], *cwd = f[2], *log_path = f[3];
    long argc = strtol(f[4], NULL, 10);
    if (argc < 1 || (size_t)argc > nf - 5) {
        const char *r[] = {"E", job, "a malformed job frame (argc)"};
        return report(r, 3);
    }
    /* f has room for two more pointers: move the environment up by one so that argv and
       the environment each end with a NULL */
    size_t envc = nf - 5 - (size_t)argc;
    char **argv = f + 5, **env = f + 5 + argc + 1;
    memmove(env, f + 5 + argc, envc * sizeof *f);
    env[envc] = NULL;
    argv[argc] = NULL;

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    posix_spawn_file_actions_addchdir_np(&actions, cwd);
    pid_t pid;
    int err = posix_spawn(&pid, exe, &actions, attr, argv, env);
    posix_spawn_file_actions_destroy(&actions);
    if (!err && pinned) sched_setaffinity(pid, sizeof task_cpus, &task_cpus); /* it has exec'd */
    if (err) { /* worded as slot.py words it */
        char msg[6144];
        snprintf(msg, sizeof msg, "could not start '%s': [Errno %d] could not start %s: %s (in %s)",
                 argv[0], err, exe, strerror(err), cwd);
        const char *r[] = {"E", job, msg};
        return report(r, 3);
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    char spid[24], sat[48];
    snprintf(spid, sizeof spid, "%d", (int)pid);
    snprintf(sat, sizeof sat, "%lld.%06ld", (long long)now.tv_sec, now.tv_nsec / 1000);
    const char *started[] = {"S", job, spid, sat};
    if (report(started, 4)) return -1;

    int status;
    struct rusage usage;
    while (wait4(pid, &status, 0, &usage) < 0) {
        if (errno != EINTR) return -1;
    }
    clock_gettime(CLOCK_REALTIME, &now);
    char sended[48];
    snprintf(sended, sizeof sended, "%lld.%06ld", (long long)now.tv_sec, now.tv_nsec / 1000);
    killpg(pid, SIGKILL); /* what the task left running belongs to its attempt */
    long orphans_peak = sweep_orphans(); /* and so does what left its group */
    /* a vfork'ed child's peak includes the spawner's memory at exec: it counts only above
       the spawner's own peak (see reap_process in spawn.py) */
    long maxrss = usage.ru_maxrss;
    if (maxrss > self_peak_kb) self_peak_kb = own_peak_kb(); /* asked only when it could matter */
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? -WTERMSIG(status) : 255;
    char scode[24], srss[24];
    snprintf(scode, sizeof scode, "%d", code);
    long reported = maxrss > self_peak_kb ? maxrss : 0L;
    if (orphans_peak > reported) reported = orphans_peak;
    snprintf(srss, sizeof srss, "%ld", reported);
    const char *exited[] = {"X", job, scode, srss, sended};
    return report(exited, 5);
}

int main(void) {
    pid_t engine = getppid();
    pin_from_env();
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); /* what a task leaves running comes back here */
    signal(SIGINT, SIG_IGN);  /* the engine decides what Ctrl-C stops */
    signal(SIGPIPE, SIG_IGN); /* a write to a dead engine fails with EPIPE instead */

    /* the task starts with an empty signal mask, default SIGPIPE / SIGXFSZ / SIGINT (ignored
       here, and an ignored signal stays ignored across exec), in a session of its own */
    posix_spawnattr_t attr;
    sigset_t defaults, empty;
    posix_spawnattr_init(&attr);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    sigaddset(&defaults, SIGXFSZ);
    sigaddset(&defaults, SIGINT);
    sigemptyset(&empty);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setsigmask(&attr, &empty);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSID);

    char *buf = NULL, **fields = NULL;
    size_t buf_cap = 0, fields_cap = 0;
    for (;;) {
        uint32_t head;
        if (read_full(0, (char *)&head, 4) <= 0) return 0; /* the run is over */
        size_t n = ntohl(head);
        if (n == 0 || n > MAX_FRAME) return 2;
        if (n + 1 > buf_cap) {
            buf_cap = n + 1;
            buf = realloc(buf, buf_cap);
            if (!buf) return 3;
        }
        if (read_full(0, buf, n) <= 0) return 0;
        /* the engine died (killed): the jobs still queued are for `updraft resume` to run */
        if (getppid() != engine) return 0;
        buf[n] = '\0';
        size_t nf = 0;
        for (size_t i = 0; i < n; i++) nf += buf[i] == '\0';
        if (nf + 3 > fields_cap) { /* one more field when the last lacks its NUL, two NULLs */
            fields_cap = nf + 3;
            fields = realloc(fields, fields_cap * sizeof *fields);
            if (!fields) return 3;
        }
        size_t k = 0;
        for (char *p = buf; p < buf + n; p += strlen(p) + 1) fields[k++] = p;
        if (k < 6) return 2; /* not a job frame: the pool and this program disagree */
        if (run_job(fields, k, &attr) < 0) return 0;
    }
}
