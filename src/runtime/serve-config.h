/* SPDX-License-Identifier: Apache-2.0 */
/* husk serve's configuration file and socket activation (serve-config.c). */
#ifndef HUSK_RUNTIME_SERVE_CONFIG_H
#define HUSK_RUNTIME_SERVE_CONFIG_H

#include <jansson.h>
#include <stdbool.h>

#include "cli.h"

struct serve_config {
    json_t *root; /* owns the strings the settings point to */
    bool log_json;
};

/* Apply the file's settings to opts through the flags' table (keys: flag names, '_' for '-').
 * A bad file, an unknown key or a value of the wrong type is an error naming the line. */
int serve_config_load(const char *path, const struct flag *flags, size_t n_flags, void *opts,
                      struct serve_config *out, struct husk_error **err);
void serve_config_free(struct serve_config *c);
/* Whether a flag is a key of the file too (--config and --check-config are not); what JSON a
 * flag's type takes ("an integer"). The file also takes "log_format": "text" or "json". */
bool serve_config_is_key(const struct flag *f);
extern const char *const serve_config_types[4];

/* Sockets from a service manager (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES); -1 when none. */
int serve_listen_fds(int *listen_fd, int *admin_fd, struct husk_error **err);

#endif
