/* SPDX-License-Identifier: Apache-2.0 */
/* A function on the stdin/stdout contract: the request body arrives on stdin, the response goes
 * to stdout, the request line and headers arrive as Http_* environment variables. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Requests larger than this are answered with their length only: a greeting needs no more. */
#define HELLO_MAX_NAME 256

int
main(void)
{
    char name[HELLO_MAX_NAME];
    size_t len = 0, total = 0;

    for (;;) {
        char buf[4096];
        ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            perror("hello-stdio: read stdin");
            return 1;
        }
        if (n == 0)
            break;
        if (len < sizeof(name)) {
            size_t take = (size_t)n < sizeof(name) - len ? (size_t)n : sizeof(name) - len;
            memcpy(name + len, buf, take);
            len += take;
        }
        total += (size_t)n;
    }
    /* "curl -d @file" and "echo" both leave a newline that is not part of the name. */
    while (len > 0 && (name[len - 1] == '\n' || name[len - 1] == '\r'))
        len--;

    const char *method = getenv("Http_Method");
    if (total > sizeof(name))
        printf("hello, %zu bytes", total);
    else if (len > 0)
        printf("hello, %.*s", (int)len, name);
    else
        printf("hello, world");
    printf(" (%s)\n", method && *method ? method : "no method");
    if (fflush(stdout) != 0) {
        perror("hello-stdio: write stdout");
        return 1;
    }
    return 0;
}
