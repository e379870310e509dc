/* SECRETS (0x43): the machine's secrets as files on their own tmpfs at /run/secrets, never on disk. */
#ifndef HF_SECRETS_H
#define HF_SECRETS_H

#include <stdint.h>

#include "conn.h"

/* Mounts the tmpfs if it is not there, writes every entry (0400, owned by USER), then removes the
 * files the request does not name; answers OK, or ERROR naming the step. A few small tmpfs writes:
 * inline on the loop's thread. */
void secrets_apply(struct conn *c, uint32_t id, const struct hf_msg *m);

#endif
