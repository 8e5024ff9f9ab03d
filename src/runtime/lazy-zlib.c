/* SPDX-License-Identifier: Apache-2.0 */
/* zlib on first use (lazy.h): the daemon's CRC-32 of AWS event-stream messages only. */
#include <stddef.h>
#include <zlib.h>

#include "lazy.h"

static struct lazy_lib zlib = {"libz.so.1", NULL};

LAZY_FWD(zlib, uLong, crc32, (uLong crc, const Bytef *buf, uInt len), (crc, buf, len))
