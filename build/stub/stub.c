/*
 * relay extractor stub: the front of every Linux bin/relay-<cpu>-unknown-linux-musl file.
 *
 * The file is this static (musl) program followed by a payload and a trailer (build/pack.py):
 *
 *   [stub ELF][zstd frame: the bundle archive][sha256 hex, 64 bytes][payload offset u64 LE]
 *   [payload size u64 LE]["RELAYPK1"]
 *
 * The bundle is a Nuitka standalone dist plus the build host's own dynamic loader (renamed ld.so)
 * and libc/libm/libz/libgcc_s, so it runs on any Linux of its CPU whatever its libc.
 *
 * Warm run (the hot path, kept to a handful of syscalls): read the trailer, find
 * <cache>/<hash>/.complete, touch it (pruning goes by last use), execv
 *   <dir>/ld.so --inhibit-cache --library-path <dir> --argv0 <argv[0]> <dir>/relay.bin ARGS...
 * There is no child process: signals, stdin/stdout/stderr and the exit status are the program's own.
 *
 * First run: pick the first usable cache base (see cache_bases()), take an exclusive lock on
 * <base>/.lock (concurrent first runs wait here), unpack into <base>/.tmp-<hash>-<pid>, write
 * .complete last, publish with rename(), prune bundles unused for PRUNE_AGE seconds, then exec.
 *
 * The payload always runs with LC_ALL=C: the Nuitka runtime aborts when LANG names a locale that is
 * not installed. The caller's locale variables are passed in RELAY_ORIG_LOCALE (newline-separated
 * NAME=VALUE, empty when none was set) so relay can restore them for the programs it spawns.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pwd.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "zstd.h"

#define MAGIC "RELAYPK1"
#define TRAILER_SIZE (64 + 8 + 8 + 8)
#define HASH_CHARS 20          /* cache dir name: first 20 hex chars of the payload sha256 */
#define PRUNE_AGE (7 * 86400)  /* other versions' bundles unused this long are removed */
#define MAX_BASES 5
#define MAX_BASE_LEN 3000

static const char *prog = "session-relay";

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "%s: %s%s%s\n", prog, what, detail ? ": " : "", detail ? detail : "");
    exit(127);
}

/* snprintf into a PATH_MAX buffer; bases are capped at MAX_BASE_LEN so this never truncates. */
__attribute__((format(printf, 2, 3))) static void xpath(char *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, PATH_MAX, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= PATH_MAX)
        die("path too long", out);
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* ---- where am I, what do I carry ------------------------------------------------------------ */

struct self {
    int fd;
    uint64_t offset, size;
    char hash[HASH_CHARS + 1];
};

static void open_self(struct self *s, const char *argv0)
{
    unsigned char t[TRAILER_SIZE];
    struct stat st;

    s->fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (s->fd < 0 && strchr(argv0, '/'))  /* no /proc: the bundled program needs it anyway */
        s->fd = open(argv0, O_RDONLY | O_CLOEXEC);
    if (s->fd < 0)
        die("cannot open own executable (is /proc mounted?)", strerror(errno));
    if (fstat(s->fd, &st) < 0 || st.st_size < TRAILER_SIZE
        || pread(s->fd, t, TRAILER_SIZE, st.st_size - TRAILER_SIZE) != TRAILER_SIZE
        || memcmp(t + TRAILER_SIZE - 8, MAGIC, 8) != 0)
        die("no payload attached to this executable (rebuild it with build/build.sh)", NULL);
    s->offset = get_u64(t + 64);
    s->size = get_u64(t + 72);
    if (s->offset + s->size + TRAILER_SIZE != (uint64_t)st.st_size)
        die("corrupt payload trailer (rebuild it with build/build.sh)", NULL);
    memcpy(s->hash, t, HASH_CHARS);
    s->hash[HASH_CHARS] = '\0';
    for (int i = 0; i < HASH_CHARS; i++)
        if (!strchr("0123456789abcdef", s->hash[i]))
            die("corrupt payload hash (rebuild it with build/build.sh)", NULL);
}

/* ---- cache locations ------------------------------------------------------------------------ */

struct base {
    char path[PATH_MAX];
    int private_tmp; /* a per-uid dir in a shared directory: must be ours and 0700 */
};

static int add_base(struct base *b, int n, const char *dir, const char *leaf, int private_tmp)
{
    if (!dir || dir[0] != '/' || n >= MAX_BASES)
        return n;
    if (strlen(dir) + strlen(leaf) + 1 > MAX_BASE_LEN)
        return n;
    xpath(b[n].path, "%s/%s", dir, leaf);
    b[n].private_tmp = private_tmp;
    return n + 1;
}

/* $XDG_CACHE_HOME, ~/.cache (HOME from passwd when unset), $TMPDIR/<uid dir>, /tmp/<uid dir>,
 * /dev/shm/<uid dir>. */
static int cache_bases(struct base *b)
{
    int n = 0;
    char leaf[PATH_MAX], cache[PATH_MAX];
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME"), *tmp = getenv("TMPDIR");

    n = add_base(b, n, xdg && *xdg ? xdg : NULL, "session-relay", 0);
    if (!home || !*home) {
        struct passwd *pw = getpwuid(getuid());
        home = pw ? pw->pw_dir : NULL;
    }
    if (home && home[0] == '/' && strcmp(home, "/") != 0 && strlen(home) < MAX_BASE_LEN) {
        xpath(cache, "%s/.cache", home);
        n = add_base(b, n, cache, "session-relay", 0);
    }
    xpath(leaf, "session-relay-%lu", (unsigned long)getuid());
    if (tmp && *tmp && strcmp(tmp, "/tmp") != 0)
        n = add_base(b, n, tmp, leaf, 1);
    n = add_base(b, n, "/tmp", leaf, 1);
    n = add_base(b, n, "/dev/shm", leaf, 1);
    return n;
}

/* A per-uid dir under a shared, sticky directory is trusted only when it is a real directory
 * owned by us that nobody else can write into. */
static int private_ok(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == getuid()
        && (st.st_mode & 077) == 0;
}

static void complete_path(char *out, const struct base *b, const char *hash)
{
    xpath(out, "%s/%s/.complete", b->path, hash);
}

/* ---- running the bundle --------------------------------------------------------------------- */

/* LANG, LANGUAGE, LC_ALL and every other LC_* variable (NAME=VALUE entries of environ). */
static int is_locale_var(const char *entry)
{
    size_t len = strcspn(entry, "=");
    if (entry[len] != '=')
        return 0;
    return (len == 4 && strncmp(entry, "LANG", 4) == 0) || (len == 8 && strncmp(entry, "LANGUAGE", 8) == 0)
        || (len > 3 && strncmp(entry, "LC_", 3) == 0);
}

/* Save the caller's locale in RELAY_ORIG_LOCALE, then force LC_ALL=C for the bundled runtime. */
static void set_locale_env(void)
{
    extern char **environ;
    size_t len = 1;
    for (char **e = environ; *e; e++)
        if (is_locale_var(*e))
            len += strlen(*e) + 1;
    char *saved = malloc(len), *p = saved;
    if (!saved)
        die("out of memory", NULL);
    for (char **e = environ; *e; e++)
        if (is_locale_var(*e)) {
            if (p != saved)
                *p++ = '\n';
            p = stpcpy(p, *e);
        }
    *p = '\0';
    if (setenv("RELAY_ORIG_LOCALE", saved, 1) < 0 || setenv("LC_ALL", "C", 1) < 0)
        die("cannot set environment", strerror(errno));
    free(saved);
}

/* Returns only when the loader could not be executed (e.g. a cleaner removed files). */
static void run_bundle(const char *dir, int argc, char **argv)
{
    char loader[PATH_MAX], program[PATH_MAX];
    xpath(loader, "%s/ld.so", dir);
    xpath(program, "%s/relay.bin", dir);

    char **args = calloc((size_t)argc + 8, sizeof *args);
    if (!args)
        die("out of memory", NULL);
    int n = 0;
    args[n++] = loader;
    args[n++] = "--inhibit-cache";   /* never look at the host's ld.so.cache / libc */
    args[n++] = "--library-path";
    args[n++] = (char *)dir;
    args[n++] = "--argv0";
    args[n++] = argv[0];
    args[n++] = program;
    for (int i = 1; i < argc; i++)
        args[n++] = argv[i];
    args[n] = NULL;
    execv(loader, args);
    free(args);
}

/* ---- unpacking ------------------------------------------------------------------------------ */

static int write_all(int fd, const unsigned char *p, size_t len)
{
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* A path inside the bundle: components that are non-empty, not "." or "..", and no NUL. */
static int safe_relative(const unsigned char *p, uint32_t len)
{
    uint32_t start = 0;
    for (uint32_t i = 0; i <= len; i++) {
        if (i < len && p[i] == 0)
            return 0;
        if (i == len || p[i] == '/') {
            uint32_t n = i - start;
            if (n == 0 || (n == 1 && p[start] == '.') || (n == 2 && p[start] == '.' && p[start + 1] == '.'))
                return 0;
            start = i + 1;
        }
    }
    return 1;
}

/* Archive records (build/pack.py): type 'd' or 'f', mode u32, path length u32, path (relative, no
 * "..", no leading '/'), then for 'f' the data length u64 and the data. */
static int unpack(const unsigned char *a, size_t len, const char *dest)
{
    size_t pos = 0;
    char path[PATH_MAX];
    while (pos < len) {
        if (len - pos < 9)
            return -1;
        unsigned char type = a[pos];
        uint32_t mode = (uint32_t)a[pos + 1] | (uint32_t)a[pos + 2] << 8
                        | (uint32_t)a[pos + 3] << 16 | (uint32_t)a[pos + 4] << 24;
        uint32_t plen = (uint32_t)a[pos + 5] | (uint32_t)a[pos + 6] << 8
                        | (uint32_t)a[pos + 7] << 16 | (uint32_t)a[pos + 8] << 24;
        pos += 9;
        if (plen == 0 || plen > len - pos || plen > 1024)
            return -1;
        if (!safe_relative(a + pos, plen))
            return -1;
        xpath(path, "%s/%.*s", dest, (int)plen, (const char *)a + pos);
        pos += plen;
        mode &= 0755;
        if (type == 'd') {
            if (mkdir(path, mode | 0700) < 0 && errno != EEXIST)
                return -1;
        } else if (type == 'f') {
            if (len - pos < 8)
                return -1;
            uint64_t dlen = get_u64(a + pos);
            pos += 8;
            if (dlen > len - pos)
                return -1;
            int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode | 0400);
            if (fd < 0)
                return -1;
            int bad = write_all(fd, a + pos, (size_t)dlen);
            if (close(fd) < 0 || bad)
                return -1;
            pos += dlen;
        } else {
            return -1;
        }
    }
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    remove(path);
    return 0;
}

static void rm_tree(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Remove crashed extractions and other versions' bundles unused for PRUNE_AGE (their .complete
 * is touched on every run). Runs under the base's lock, so no extraction is in progress. */
static void prune(const char *base, const char *keep)
{
    DIR *d = opendir(base);
    if (!d)
        return;
    struct dirent *e;
    char path[PATH_MAX];
    struct stat st;
    time_t now = time(NULL);
    while ((e = readdir(d))) {
        int tmp = strncmp(e->d_name, ".tmp-", 5) == 0;
        if (!tmp && (strlen(e->d_name) != HASH_CHARS
                     || strspn(e->d_name, "0123456789abcdef") != HASH_CHARS
                     || strcmp(e->d_name, keep) == 0))
            continue;
        if (!tmp) {
            xpath(path, "%s/%s/.complete", base, e->d_name);
            if (stat(path, &st) == 0 && now - st.st_mtime < PRUNE_AGE)
                continue;
        }
        xpath(path, "%s/%s", base, e->d_name);
        rm_tree(path);
    }
    closedir(d);
}

/* Whether the file system holding path (or its nearest existing ancestor) can hold runnable
 * bundles: not mounted read-only or noexec. Checked before creating anything there. */
static int fs_usable(const char *path)
{
    char p[PATH_MAX];
    struct statvfs vfs;
    xpath(p, "%s", path);
    while (statvfs(p, &vfs) < 0) {
        char *slash = strrchr(p, '/');
        if (errno != ENOENT || !slash || slash == p)
            return 0;
        *slash = '\0';
    }
    return !(vfs.f_flag & (ST_RDONLY | ST_NOEXEC));
}

/* Creates base (and a missing parent like ~/.cache) and says whether bundles may live there:
 * a writable, exec-capable file system, and private when it is a per-uid dir. */
static int prepare_base(const struct base *b)
{
    if (!fs_usable(b->path))
        return 0;
    if (mkdir(b->path, 0700) < 0 && errno != EEXIST) {
        if (errno != ENOENT || b->private_tmp)
            return 0;
        char parent[PATH_MAX];
        xpath(parent, "%s", b->path);
        *strrchr(parent, '/') = '\0';
        if (mkdir(parent, 0700) < 0 || mkdir(b->path, 0700) < 0)
            return 0;
    }
    if (b->private_tmp && !private_ok(b->path))
        return 0;
    return fs_usable(b->path) && access(b->path, W_OK | X_OK) == 0;
}

static void *decompress_payload(const struct self *s, size_t *out_len)
{
    unsigned char *packed = malloc(s->size ? s->size : 1);
    if (!packed)
        die("out of memory", NULL);
    for (uint64_t got = 0; got < s->size;) {
        ssize_t r = pread(s->fd, packed + got, s->size - got, (off_t)(s->offset + got));
        if (r <= 0)
            die("cannot read payload", strerror(errno));
        got += (uint64_t)r;
    }
    unsigned long long size = ZSTD_getFrameContentSize(packed, s->size);
    if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN || size > (1ULL << 31))
        die("corrupt payload (rebuild it with build/build.sh)", NULL);
    void *out = malloc(size ? size : 1);
    if (!out)
        die("out of memory", NULL);
    size_t r = ZSTD_decompress(out, size, packed, s->size); /* also verifies the frame checksum */
    if (ZSTD_isError(r) || r != size)
        die("corrupt payload", ZSTD_getErrorName(r));
    free(packed);
    *out_len = size;
    return out;
}

/* Unpacks into base (under its lock) unless another process already did. 0 on success. */
static int install(const struct base *b, const struct self *s, void **archive, size_t *alen)
{
    char lock[PATH_MAX], final[PATH_MAX], tmp[PATH_MAX], marker[PATH_MAX];
    xpath(lock, "%s/.lock", b->path);
    xpath(final, "%s/%s", b->path, s->hash);
    xpath(tmp, "%s/.tmp-%s-%ld", b->path, s->hash, (long)getpid());
    complete_path(marker, b, s->hash);

    int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (lfd < 0)
        return -1;
    while (flock(lfd, LOCK_EX) < 0)
        if (errno != EINTR) {
            close(lfd);
            return -1;
        }
    int rc = 0;
    if (access(marker, F_OK) != 0) { /* nobody finished it while we waited */
        if (!*archive)
            *archive = decompress_payload(s, alen);
        rm_tree(final); /* a leftover without .complete */
        int fd = -1;
        rc = -1;
        if (mkdir(tmp, 0700) == 0 && unpack(*archive, *alen, tmp) == 0) {
            char done[PATH_MAX];
            xpath(done, "%s/.complete", tmp);
            fd = open(done, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        }
        if (fd >= 0 && close(fd) == 0 && rename(tmp, final) == 0)
            rc = 0;
        else
            rm_tree(tmp);
        if (rc == 0)
            prune(b->path, s->hash);
    }
    close(lfd); /* releases the lock */
    return rc;
}

int main(int argc, char **argv)
{
    struct self s;
    struct base bases[MAX_BASES];
    char marker[PATH_MAX], dir[PATH_MAX];
    void *archive = NULL;
    size_t alen = 0;

    if (argc < 1 || !argv[0])
        die("started without argv[0]", NULL);
    open_self(&s, argv[0]);
    int n = cache_bases(bases);
    set_locale_env();

    /* Warm path: the first base holding a complete bundle of this payload. */
    for (int i = 0; i < n; i++) {
        complete_path(marker, &bases[i], s.hash);
        if (access(marker, F_OK) != 0)
            continue;
        if (bases[i].private_tmp && !private_ok(bases[i].path))
            continue;
        utimensat(AT_FDCWD, marker, NULL, 0); /* last use, for pruning */
        xpath(dir, "%s/%s", bases[i].path, s.hash);
        close(s.fd);
        run_bundle(dir, argc, argv);
        /* Files vanished under a complete marker: drop the marker and unpack again below. */
        unlink(marker);
        open_self(&s, argv[0]);
        break;
    }

    /* First run: unpack into the first base that is usable. */
    for (int i = 0; i < n; i++) {
        if (!prepare_base(&bases[i]) || install(&bases[i], &s, &archive, &alen) != 0)
            continue;
        xpath(dir, "%s/%s", bases[i].path, s.hash);
        close(s.fd);
        free(archive);
        run_bundle(dir, argc, argv);
        die("cannot execute the unpacked program", strerror(errno));
    }
    fprintf(stderr, "%s: no writable, executable cache directory to unpack into (tried", prog);
    for (int i = 0; i < n; i++)
        fprintf(stderr, " %s", bases[i].path);
    fprintf(stderr, "); set XDG_CACHE_HOME to one\n");
    return 127;
}
