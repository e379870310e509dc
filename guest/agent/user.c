#include "user.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* A decimal id, or -1 if s is not one (so names like "1abc" stay names). */
static long parse_id(const char *s)
{
	if (!*s)
		return -1;
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (*end || errno || v > 0x7fffffffUL || *s == '-' || *s == '+')
		return -1;
	return (long)v;
}

static void from_passwd(struct user_info *u, const struct passwd *pw)
{
	u->named = 1;
	snprintf(u->name, sizeof u->name, "%s", pw->pw_name);
	snprintf(u->home, sizeof u->home, "%s", pw->pw_dir && *pw->pw_dir ? pw->pw_dir : "/");
	u->uid = pw->pw_uid;
	u->gid = pw->pw_gid;
}

int user_resolve(const char *spec, struct user_info *u, const char **why)
{
	memset(u, 0, sizeof *u);
	snprintf(u->home, sizeof u->home, "/");
	if (!spec) {
		struct passwd *pw = getpwuid(getuid());
		if (pw && pw->pw_dir && *pw->pw_dir)
			snprintf(u->home, sizeof u->home, "%s", pw->pw_dir);
		return 0;
	}
	char user[256], *group = NULL;
	if (strlen(spec) >= sizeof user) {
		*why = "USER is too long";
		return -EINVAL;
	}
	strcpy(user, spec);
	char *colon = strchr(user, ':');
	if (colon) {
		*colon = 0;
		group = colon + 1;
	}
	u->set = 1;
	long id = parse_id(user);
	struct passwd *pw = id >= 0 ? getpwuid((uid_t)id) : getpwnam(user);
	if (pw) {
		from_passwd(u, pw);
	} else if (id >= 0) {
		/* A bare uid without an entry: its own group rather than root's (least privilege). */
		u->uid = (uid_t)id;
		u->gid = (gid_t)id;
		snprintf(u->name, sizeof u->name, "%ld", id);
	} else {
		*why = "unknown user (not in /etc/passwd)";
		return -EINVAL;
	}
	if (group) {
		long gid = parse_id(group);
		if (gid < 0) {
			struct group *gr = getgrnam(group);
			if (!gr) {
				*why = "unknown group (not in /etc/group)";
				return -EINVAL;
			}
			gid = (long)gr->gr_gid;
		}
		u->gid = (gid_t)gid;
	}
	return 0;
}

/* Replaces the entry with the same key, or appends. */
static void env_set(char **envp, size_t *n, char *kv)
{
	size_t klen = (size_t)(strchr(kv, '=') - kv) + 1;
	for (size_t i = 0; i < *n; i++) {
		if (strncmp(envp[i], kv, klen) == 0) {
			envp[i] = kv;
			return;
		}
	}
	envp[(*n)++] = kv;
}

int env_build(struct exec_env *e, const struct exec_req *r, const struct user_info *u)
{
	size_t extra = 0;
	while (r->env[extra])
		extra++;
	e->envp = malloc((4 + extra + 1) * sizeof(char *));
	if (!e->envp)
		return -ENOMEM;
	size_t n = 0;
	e->envp[n++] = (char *)DEFAULT_PATH;
	snprintf(e->home_kv, sizeof e->home_kv, "HOME=%s", u->home);
	e->envp[n++] = e->home_kv;
	if (u->set) {
		snprintf(e->user_kv, sizeof e->user_kv, "USER=%s", u->name);
		snprintf(e->logname_kv, sizeof e->logname_kv, "LOGNAME=%s", u->name);
		e->envp[n++] = e->user_kv;
		e->envp[n++] = e->logname_kv;
	}
	for (size_t i = 0; i < extra; i++)
		env_set(e->envp, &n, r->env[i]);
	e->envp[n] = NULL;
	return 0;
}

void env_free(struct exec_env *e)
{
	free(e->envp);
	e->envp = NULL;
}
