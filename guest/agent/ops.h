/* Per-kind cleanup of operations, called by conn_end_op (exec.c, files.c, pathops.c implement them). */
#ifndef HF_OPS_H
#define HF_OPS_H

#include "conn.h"

void exec_release(struct op *o);
void file_release(struct op *o);
void path_op_release(struct op *o);
void dir_release(struct op *o);
void mount_release(struct op *o);

#endif
