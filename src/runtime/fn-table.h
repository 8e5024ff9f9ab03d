/* SPDX-License-Identifier: Apache-2.0 */
/* husk fn's tables (fn-table.c). */
#ifndef HUSK_RUNTIME_FN_TABLE_H
#define HUSK_RUNTIME_FN_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* Print the admin API's JSON answer to subcommand `sub` as a table; false when `sub` has no
 * table or the answer is not JSON (the caller prints it as it is). */
bool fn_table_render(const char *sub, const char *body, size_t len, FILE *out);

#endif
