/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A function on the lambda contract: a `bootstrap` that speaks the AWS Lambda Runtime API at
 * $AWS_LAMBDA_RUNTIME_API, as any custom runtime does. It gets each event with
 * invocation/next (keeping one connection alive) and answers with a small JSON document naming
 * the request id and the event's length; an event that is the JSON string "fail" is answered
 * through invocation/ID/error instead. Events "stream", "stream-fail" and "stream-http" (or an
 * HTTP call of the path /stream, /stream-fail or /stream-http) get a streamed response: three
 * lines 300 ms apart; the second mode reports an error in the trailers after the first line;
 * the third starts with an HTTP integration prelude (status 201, a header).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define HEAD_MAX (64 * 1024)

struct api {
    struct sockaddr_in addr;
    int fd;
    char buf[HEAD_MAX]; /* bytes read and not used yet */
    size_t len;
    char head[HEAD_MAX]; /* the last response's head, NUL-terminated */
};

static int
api_connect(struct api *a)
{
    if (a->fd >= 0)
        return 0;
    a->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    a->len = 0;
    int one = 1;
    if (a->fd < 0 || connect(a->fd, (struct sockaddr *)&a->addr, sizeof(a->addr)) < 0)
        return -1;
    setsockopt(a->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return 0;
}

static int
send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* One response: its head in a->head, its body in *body (malloc'd). */
static int
read_response(struct api *a, char **body, size_t *body_len)
{
    char *end;
    while ((end = memmem(a->buf, a->len, "\r\n\r\n", 4)) == NULL) {
        if (a->len == sizeof(a->buf))
            return -1;
        ssize_t n = read(a->fd, a->buf + a->len, sizeof(a->buf) - a->len);
        if (n <= 0)
            return -1;
        a->len += (size_t)n;
    }
    size_t head = (size_t)(end + 4 - a->buf);
    memcpy(a->head, a->buf, head - 2);
    a->head[head - 2] = '\0';
    const char *cl = strcasestr(a->head, "\r\nContent-Length:");
    size_t want = cl ? strtoul(cl + 17, NULL, 10) : 0;
    *body = malloc(want + 1);
    if (*body == NULL)
        return -1;
    size_t have = a->len - head < want ? a->len - head : want;
    memcpy(*body, a->buf + head, have);
    a->len -= head + have; /* what is left belongs to the next response */
    memmove(a->buf, a->buf + head + have, a->len);
    while (have < want) {
        ssize_t n = read(a->fd, *body + have, want - have);
        if (n <= 0)
            return -1;
        have += (size_t)n;
    }
    (*body)[want] = '\0';
    *body_len = want;
    return 0;
}

static int
request(struct api *a, const char *method, const char *path, const char *body, size_t len,
        char **resp, size_t *resp_len)
{
    char head[512];
    int n = snprintf(head, sizeof(head),
                     "%s %s HTTP/1.1\r\nHost: runtime\r\nContent-Length: %zu\r\n"
                     "Content-Type: application/json\r\n\r\n",
                     method, path, len);
    if (api_connect(a) < 0 || send_all(a->fd, head, (size_t)n) < 0 ||
        send_all(a->fd, body, len) < 0 || read_response(a, resp, resp_len) < 0) {
        if (a->fd >= 0)
            close(a->fd);
        a->fd = -1;
        return -1;
    }
    return atoi(a->head + 9); /* "HTTP/1.1 200" */
}

/* The event names a mode: the JSON string "NAME", or an HTTP call of the path /NAME. */
static bool
mode(const char *event, const char *name)
{
    char quoted[64], path[80];
    snprintf(quoted, sizeof(quoted), "\"%s\"", name);
    snprintf(path, sizeof(path), "\"rawPath\":\"/%s\"", name);
    return strcmp(event, quoted) == 0 || strstr(event, path) != NULL;
}

static int
send_chunk(int fd, const char *text)
{
    char size[32];
    int n = snprintf(size, sizeof(size), "%zx\r\n", strlen(text));
    return send_all(fd, size, (size_t)n) < 0 || send_all(fd, text, strlen(text)) < 0 ||
                   send_all(fd, "\r\n", 2) < 0
               ? -1
               : 0;
}

/* A streamed response: chunks as they are made, an error in the trailers. */
static int
stream(struct api *a, const char *path, bool fail, bool http)
{
    static const char prelude[] = "{\"statusCode\":201,\"headers\":{\"X-Streamed\":\"yes\"}}";
    char head[512], *ack = NULL;
    size_t ack_len = 0;
    int n =
        snprintf(head, sizeof(head),
                 "POST %s HTTP/1.1\r\nHost: runtime\r\nTransfer-Encoding: chunked\r\n"
                 "Lambda-Runtime-Function-Response-Mode: streaming\r\nContent-Type: %s\r\n"
                 "Trailer: Lambda-Runtime-Function-Error-Type, "
                 "Lambda-Runtime-Function-Error-Body\r\n\r\n",
                 path, http ? "application/vnd.awslambda.http-integration-response" : "text/plain");
    if (api_connect(a) < 0 || send_all(a->fd, head, (size_t)n) < 0)
        return -1;
    if (http &&
        (send_chunk(a->fd, prelude) < 0 || send_all(a->fd, "8\r\n\0\0\0\0\0\0\0\0\r\n", 13) < 0))
        return -1;
    for (int i = 1; i <= 3; i++) {
        char line[32];
        snprintf(line, sizeof(line), "line %d\n", i);
        if (send_chunk(a->fd, line) < 0)
            return -1;
        if (fail)
            break;
        if (i < 3)
            usleep(300 * 1000);
    }
    /* base64 of {"errorMessage":"broke mid-stream","errorType":"Stream"} */
    const char *end = fail ? "0\r\nLambda-Runtime-Function-Error-Type: Stream\r\n"
                             "Lambda-Runtime-Function-Error-Body: eyJlcnJvck1lc3NhZ2UiOiJicm9rZS"
                             "BtaWQtc3RyZWFtIiwiZXJyb3JUeXBlIjoiU3RyZWFtIn0=\r\n\r\n"
                           : "0\r\n\r\n";
    if (send_all(a->fd, end, strlen(end)) < 0 || read_response(a, &ack, &ack_len) < 0)
        return -1;
    free(ack);
    return atoi(a->head + 9);
}

int
main(void)
{
    const char *api = getenv("AWS_LAMBDA_RUNTIME_API");
    char host[64];
    unsigned port = 0;
    struct api a = {.fd = -1};
    if (api == NULL || sscanf(api, "%63[0-9.]:%u", host, &port) != 2 ||
        inet_pton(AF_INET, host, &a.addr.sin_addr) != 1) {
        fprintf(stderr, "lambda-hello: AWS_LAMBDA_RUNTIME_API is not IPV4:PORT\n");
        return 1;
    }
    a.addr.sin_family = AF_INET;
    a.addr.sin_port = htons((unsigned short)port);
    for (;;) {
        char *event = NULL, *ack = NULL, path[256], out[512], id[128] = "";
        size_t len = 0, ack_len = 0;
        if (request(&a, "GET", "/2018-06-01/runtime/invocation/next", "", 0, &event, &len) != 200) {
            fprintf(stderr, "lambda-hello: invocation/next failed\n");
            return 1;
        }
        const char *h = strcasestr(a.head, "\r\nLambda-Runtime-Aws-Request-Id:");
        if (h)
            sscanf(h + 32, " %127[^\r\n]", id);
        snprintf(path, sizeof(path), "/2018-06-01/runtime/invocation/%s/response", id);
        if (mode(event, "stream") || mode(event, "stream-fail") || mode(event, "stream-http")) {
            int status = stream(&a, path, mode(event, "stream-fail"), mode(event, "stream-http"));
            if (status != 202)
                fprintf(stderr, "lambda-hello: streamed %s: HTTP %d\n", path, status);
            free(event);
            continue;
        }
        bool fail = strcmp(event, "\"fail\"") == 0;
        int n = fail ? snprintf(out, sizeof(out),
                                "{\"errorMessage\":\"asked to fail\",\"errorType\":\"Fail\"}")
                     : snprintf(out, sizeof(out),
                                "{\"requestId\":\"%s\",\"eventLength\":%zu,\"hello\":\"world\"}",
                                id, len);
        snprintf(path, sizeof(path), "/2018-06-01/runtime/invocation/%s/%s", id,
                 fail ? "error" : "response");
        int status = request(&a, "POST", path, out, (size_t)n, &ack, &ack_len);
        if (status != 202)
            fprintf(stderr, "lambda-hello: %s: HTTP %d\n", path, status);
        free(event);
        free(ack);
    }
}
