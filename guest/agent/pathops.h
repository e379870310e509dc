/*
 * STAT, DELETE, MKDIR, RENAME and SYMLINK: decoded on the loop, carried out by a worker (any of them can block: a
 * recursive delete of a big tree, a hung mount), answered on the loop. Each holds its id in the
 * connection's operations until it is answered.
 */
#ifndef HF_PATHOPS_H
#define HF_PATHOPS_H

#include <stdint.h>

#include "conn.h"

void path_op_start(struct conn *c, uint32_t id, uint8_t type, const struct hf_msg *m);

#endif
