/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CVE-2019-5736: a container must never reach the husk binary on the host through
 * /proc/PID/exe, e.g. by making its program "#!/proc/self/exe" so that the sandbox process
 * re-executes husk inside the container. Verbs that create sandboxes therefore run from a
 * sealed memfd copy of the binary (as runc's cloned_binary does): whatever the container opens
 * is that copy, and the seals refuse every write.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "util.h"

#define CLONE_NAME "husk-sealed"

static bool
running_sealed(void)
{
    char link[64] = {0};
    ssize_t n = readlink("/proc/self/exe", link, sizeof(link) - 1);
    return n > 0 && str_has_prefix(link, "/memfd:" CLONE_NAME);
}

int
cli_reexec_sealed(char **argv, struct husk_error **err)
{
    extern char **environ;
    struct stat st;

    if (running_sealed())
        return 0;
    cleanup_fd int src = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (src < 0 || fstat(src, &st) < 0)
        return husk_err(err, errno, "open /proc/self/exe");
    cleanup_fd int mfd = memfd_create(CLONE_NAME, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (mfd < 0)
        return husk_err(err, errno, "memfd_create");
    for (off_t off = 0; off < st.st_size;) {
        ssize_t n = sendfile(mfd, src, &off, (size_t)(st.st_size - off));
        if (n <= 0)
            return husk_err(err, n < 0 ? errno : EIO, "copy /proc/self/exe");
    }
    if (fcntl(mfd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0)
        return husk_err(err, errno, "seal the husk copy");
    fexecve(mfd, argv, environ);
    return husk_err(err, errno, "re-execute husk from its sealed copy");
}
