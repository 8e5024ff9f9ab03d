/* SPDX-License-Identifier: Apache-2.0 */
/* The faas layer's pure logic: HTTP requests through llhttp, and deploy-spec validation. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "faas-internal.h"
#include "util.h"

static void
limit_10(struct faas_request *r, void *data)
{
    r->max_body = 10;
}

static int
feed(struct faas_parser *p, const char *s, const char **why)
{
    return faas_parser_feed(p, s, strlen(s), why);
}

static void
test_request_in_pieces(void **state)
{
    struct faas_parser *p = faas_parser_new();
    const char *why = NULL;
    assert_int_equal(feed(p, "POST /function/echo?x=1 HTTP/1.1\r\nHo", &why), 0);
    assert_int_equal(feed(p, "st: a\r\nX-Thing: t\r\nContent-Length: 5\r\n\r\nhel", &why), 0);
    assert_int_equal(feed(p, "lo", &why), 1);
    struct faas_request *r = faas_parser_request(p);
    assert_string_equal(r->method, "POST");
    assert_string_equal(r->url, "/function/echo?x=1");
    assert_string_equal(faas_request_header(r, "x-thing"), "t");
    assert_string_equal(faas_request_header(r, "Host"), "a");
    assert_int_equal(r->body_len, 5);
    assert_memory_equal(r->body, "hello", 5);
    assert_false(r->too_large);
    faas_parser_free(p);
}

static void
test_chunked_body_over_limit(void **state)
{
    struct faas_parser *p = faas_parser_new();
    const char *why = NULL;
    faas_parser_set_head_fn(p, limit_10, NULL);
    assert_int_equal(feed(p,
                          "POST /f HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n",
                          &why),
                     1);
    assert_true(faas_parser_request(p)->too_large);
    faas_parser_free(p);
}

static void
test_declared_length_over_limit(void **state)
{
    struct faas_parser *p = faas_parser_new();
    const char *why = NULL;
    faas_parser_set_head_fn(p, limit_10, NULL);
    assert_int_equal(feed(p, "POST /f HTTP/1.1\r\nContent-Length: 11\r\n\r\n01234567890", &why), 1);
    assert_true(faas_parser_request(p)->too_large);
    assert_int_equal(faas_parser_request(p)->body_len, 0);
    faas_parser_free(p);
}

static void
test_malformed(void **state)
{
    static const char *bad[] = {
        "NOT HTTP\r\n\r\n", "GET / HTTP/1.1\r\nBad Header\r\n\r\n", "GET / HTTP/9.9\r\n\r\n",
        /* names a proxy strips must not hide behind a space */
        "GET / HTTP/1.1\r\nX-Forwarded For : 1\r\n\r\n", "GET / HTTP/1.1\r\n: no name\r\n\r\n"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        struct faas_parser *p = faas_parser_new();
        const char *why = NULL;
        assert_int_equal(feed(p, bad[i], &why), -1);
        assert_non_null(why);
        faas_parser_free(p);
    }
    /* EOF in the middle of a request */
    struct faas_parser *p = faas_parser_new();
    const char *why = NULL;
    assert_int_equal(feed(p, "GET / HTTP/1.1\r\n", &why), 0);
    assert_int_equal(faas_parser_feed(p, NULL, 0, &why), -1);
    faas_parser_free(p);
}

static void
expect_field(const char *spec, const char *field)
{
    struct husk_error *err = NULL;
    struct faas_function *f = NULL;
    struct faas_policy policy = {.userns_base = 1u << 30, .userns_slots = 16};
    struct faas_deploy_ctx dc = {.state_dir = "/nonexistent", .policy = &policy};
    int r = faas_function_parse(spec, strlen(spec), &dc, &f, &err);
    /* A mistake of the deployer's, or the errno of the file it names. */
    assert_true(r == -EINVAL || r == -ENOENT);
    assert_null(f);
    assert_non_null(err);
    if (strstr(err->msg, field) == NULL)
        fail_msg("'%s' does not name %s", err->msg, field);
    husk_error_free(err);
}

static void
test_deploy_spec_errors_name_the_field(void **state)
{
    expect_field("{", "body");
    expect_field("[]", "body");
    expect_field("{\"bundle\":\"/b\"}", "'name'");
    expect_field("{\"name\":\"a/b\",\"bundle\":\"/b\"}", "'name'");
    expect_field("{\"name\":\"a\",\"contract\":\"grpc\",\"bundle\":\"/b\"}", "'contract'");
    expect_field("{\"name\":\"a\",\"min\":3,\"max\":2,\"bundle\":\"/b\"}", "'min'");
    expect_field("{\"name\":\"a\",\"cpus\":0.001,\"bundle\":\"/b\"}", "'cpus'");
    expect_field("{\"name\":\"a\",\"port\":0,\"bundle\":\"/b\"}", "'port'");
    expect_field("{\"name\":\"a\",\"bundle\":\"/b\",\"dir\":\"/\"}", "'bundle'");
    expect_field("{\"name\":\"a\",\"dir\":\"/\"}", "'command'");
    expect_field("{\"name\":\"a\",\"timeout\":0,\"bundle\":\"/b\"}", "'timeout'");
    expect_field("{\"name\":\"a\",\"timeout\":3601,\"bundle\":\"/b\"}", "'timeout'");
    expect_field("{\"name\":\"a\",\"max_body\":-1,\"bundle\":\"/b\"}", "'max_body'");
    expect_field("{\"name\":\"a\",\"memory\":100,\"bundle\":\"/b\"}", "'memory'");
    expect_field("{\"name\":\"a\",\"env\":\"A=1\",\"bundle\":\"/b\"}", "'env'");
    expect_field("{\"name\":\"a\",\"env\":[\"A=1\",3],\"bundle\":\"/b\"}", "'env[1]'");
    expect_field("{\"name\":\"a\"}", "'bundle'");
    expect_field("{\"name\":\"a\",\"bundle\":\"relative\"}", "'bundle'");
    expect_field("{\"name\":\"a\",\"bundle\":\"/nonexistent/husk-bundle\"}", "'bundle'");
    expect_field("{\"name\":\"a\",\"memroy\":1,\"bundle\":\"/b\"}", "'memroy'");
    expect_field("{\"name\":\"a\",\"landlock\":\"no\",\"bundle\":\"/b\"}", "'landlock'");
    expect_field("{\"name\":\"a\",\"max_response\":0,\"bundle\":\"/b\"}", "'max_response'");
    expect_field("{\"name\":\"a\",\"bundle\":\"/b/../b\"}", "'bundle'");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_in_pieces),
        cmocka_unit_test(test_chunked_body_over_limit),
        cmocka_unit_test(test_declared_length_over_limit),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_deploy_spec_errors_name_the_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
