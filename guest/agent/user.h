/* EXEC's USER field and default environment: `name`, `uid`, `user:group` resolved via /etc/passwd
 * and /etc/group (musl reads the files directly, no NSS). */
#ifndef HF_USER_H
#define HF_USER_H

#include <sys/types.h>

#include "req.h"

struct user_info {
	int set;   /* USER was given: switch ids in the child */
	int named; /* a passwd entry exists: initgroups() from /etc/group */
	uid_t uid;
	gid_t gid;
	char name[256];
	char home[HF_PATH_MAX];
};

/* Fills u for spec (NULL: the agent's own user, only HOME matters). 0 or -errno with *why. */
int user_resolve(const char *spec, struct user_info *u, const char **why);

/* The child's environment: defaults, then the request's ENV in order. */
struct exec_env {
	char **envp;
	char home_kv[HF_PATH_MAX + 8];
	char user_kv[270];
	char logname_kv[270];
};

int env_build(struct exec_env *e, const struct exec_req *r, const struct user_info *u);
void env_free(struct exec_env *e);

#endif
