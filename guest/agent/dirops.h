/*
 * READDIR: a directory's entries, streamed in DIRENTS frames of at most HF_DIRENTS_MAX bytes, each
 * entry lstat'ed (a symlink is reported as one, with its target, never followed). Like a READ it
 * is pumped on the loop while the connection's output is below OUT_HIGH, one frame per pump, so a
 * directory of any size costs bounded memory and interleaves with everything else.
 */
#ifndef HF_DIROPS_H
#define HF_DIROPS_H

#include <stdint.h>

#include "conn.h"

void dir_start(struct conn *c, uint32_t id, const struct hf_msg *m);
/* Queues the next DIRENTS frame of o (a READDIR); called by file_read_pump. */
void dir_pump(struct op *o);
/* CANCEL: ERROR ECANCELED. */
void dir_cancel(struct op *o);

#endif
