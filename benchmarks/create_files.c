/* What making one small file costs the kernel, by the way the unpack names it: the system
   calls of the tree writer's operations thread, without Python (README "Compiled hot paths").

   gcc -O2 -o /tmp/create_files benchmarks/create_files.c
   for mode in rename tmpfile procfs direct; do rm -rf /dev/shm/cf; /tmp/create_files /dev/shm/cf $mode; done

   100,000 files of 4,000 bytes in 100 folders, each given mode and mtime as stc does:
   rename   under a temp name (O_EXCL), then renamed to its own (stc before PLACE);
   tmpfile  O_TMPFILE, then linkat(AT_EMPTY_PATH) (needs CAP_DAC_READ_SEARCH);
   procfs   O_TMPFILE, then linkat through /proc/self/fd (any user);
   direct   under its own name at once (PLACE, and GNU tar). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { FILES = 100000, FOLDERS = 100, SIZE = 4000 };

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void fail(const char *what)
{
    perror(what);
    exit(1);
}

/* Content, mode and mtime: what every way does alike. */
static void fill(int fd, const char *data)
{
    static const struct timespec times[2] = {{1000, 0}, {1000, 0}};
    if (write(fd, data, SIZE) != SIZE || fchmod(fd, 0644) < 0 || futimens(fd, times) < 0)
        fail("write");
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s NEW_FOLDER rename|tmpfile|procfs|direct\n", argv[0]);
        return 2;
    }
    const char *way = argv[2];
    static char data[SIZE];
    memset(data, 'x', sizeof data);
    if (mkdir(argv[1], 0755) < 0)
        fail("mkdir");
    int root = open(argv[1], O_DIRECTORY | O_RDONLY), folders[FOLDERS];
    for (int i = 0; i < FOLDERS; i++) {
        char name[16];
        snprintf(name, sizeof name, "d%02d", i);
        if (mkdirat(root, name, 0755) < 0)
            fail("mkdirat");
        folders[i] = openat(root, name, O_DIRECTORY | O_RDONLY);
    }
    double start = now();
    for (int i = 0; i < FILES; i++) {
        int dir = folders[i % FOLDERS], fd;
        char name[32], temp[32], proc[64];
        snprintf(name, sizeof name, "file%06d.txt", i);
        if (strcmp(way, "rename") == 0) {
            snprintf(temp, sizeof temp, ".stc-1-%d.tmp", i);
            fd = openat(dir, temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
            if (fd < 0)
                fail("openat");
            fill(fd, data);
            close(fd);
            if (renameat(dir, temp, dir, name) < 0)
                fail("renameat");
        } else if (strcmp(way, "tmpfile") == 0 || strcmp(way, "procfs") == 0) {
            fd = openat(dir, ".", O_WRONLY | O_TMPFILE | O_CLOEXEC, 0600);
            if (fd < 0)
                fail("O_TMPFILE");
            fill(fd, data);
            snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
            if (way[0] == 't' ? linkat(fd, "", dir, name, AT_EMPTY_PATH) < 0
                              : linkat(AT_FDCWD, proc, dir, name, AT_SYMLINK_FOLLOW) < 0)
                fail("linkat");
            close(fd);
        } else if (strcmp(way, "direct") == 0) {
            fd = openat(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
            if (fd < 0)
                fail("openat");
            fill(fd, data);
            close(fd);
        } else {
            fprintf(stderr, "unknown way %s\n", way);
            return 2;
        }
    }
    double seconds = now() - start;
    printf("%-8s %.3f s, %.2f us a file\n", way, seconds, seconds / FILES * 1e6);
    return 0;
}
