/* Device-driven kernel module loading from the initramfs's module list (format in modules.c). */
#ifndef HF_INIT_MODULES_H
#define HF_INIT_MODULES_H

#define LATE_MODULES_MAX 16

/* Modules marked `late` whose condition holds: opened, to be loaded once the boot has moved on. */
struct late_modules {
	int fd[LATE_MODULES_MAX];
	const char *path[LATE_MODULES_MAX];
	int count;
};

/* Loads the modules the list at list_path asks for on this VM's devices, in two passes (transports,
 * then device drivers); opens the `late` ones into *late. Failures are reported, not fatal. */
void modules_load(const char *list_path, struct late_modules *late);
/* Loads the modules modules_load deferred, in list order, and closes them. */
void modules_load_late(struct late_modules *late);

#endif
