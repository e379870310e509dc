/* IDENTITY: a clone of a memory snapshot gets its own RNG state, clock and hostname. */
#ifndef HF_IDENTITY_H
#define HF_IDENTITY_H

#include <stdint.h>

#include "conn.h"

/* Applies ENTROPY, TIME_NS and HOSTNAME in that order and answers OK, or ERROR naming the part
 * that failed (the parts before it stay applied). Fast syscalls and two small /etc files: inline. */
void identity_apply(struct conn *c, uint32_t id, const struct hf_msg *m);

/* PID 1 at boot, after the network wrote /etc/hosts: /etc/hostname (the hostname just set) and
 * /etc/hosts become bind mounts of files in /run/hf, as Docker does, which identity_apply rewrites
 * in place. Logs and goes on without a file it cannot bind (identity_apply then renames over it). */
void identity_bind_etc(void);

#endif
