/*
 * WRITE (temp file + rename) and READ (chunked, interleaved). Each step on the loop is one bounded
 * syscall (an open, a write of one DATA frame, a read of one chunk); the end of a WRITE (fsync,
 * rename, close) runs in a worker. STAT, DELETE and MKDIR are in pathops.h.
 */
#ifndef HF_FILES_H
#define HF_FILES_H

#include <stdint.h>

#include "conn.h"

/* Bytes per DATA frame of a READ; one chunk per READ per loop iteration keeps others moving. */
#define READ_CHUNK (256u * 1024u)

void file_write_start(struct conn *c, const struct hf_frame *f, const struct hf_msg *m);
void file_write_data(struct op *o, const struct hf_frame *f);
void file_read_start(struct conn *c, uint32_t id, const struct hf_msg *m);
/* Queues the next chunk of every READ (and DIRENTS frame of every READDIR) on c while c's output
 * is below OUT_HIGH. */
void file_read_pump(struct conn *c);
/* 1 when c has a READ or READDIR with data to send and room below OUT_HIGH for it: the loop must not sleep.
 * Above OUT_HIGH the loop waits for POLLOUT instead. */
int file_read_can_pump(const struct conn *c);
/* CANCEL: end the operation with ERROR ECANCELED (a WRITE's temp file is removed); ignored for
 * a WRITE that is committing. */
void file_read_cancel(struct op *o);
void file_write_cancel(struct op *o);

#endif
