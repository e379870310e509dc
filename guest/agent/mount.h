/*
 * MOUNT: a filesystem (a volume's disk, found by its virtio serial) mounted at a target the agent
 * creates first. Decoded on the loop, carried out by a worker (mount(2) of a disk can block on I/O),
 * answered OK or ERROR on the loop.
 */
#ifndef HF_MOUNT_H
#define HF_MOUNT_H

#include <stdint.h>

#include "conn.h"

void mount_start(struct conn *c, uint32_t id, const struct hf_msg *m);

#endif
