/* Device-driven kernel module loading from the initramfs's module list (format in modules.c). */
#ifndef HF_INIT_MODULES_H
#define HF_INIT_MODULES_H

/* Loads the modules the list at list_path asks for on this VM's devices, in two passes (transports,
 * then device drivers); only opens those marked `late`. Failures are reported, not fatal: whoever
 * needs the device decides. */
void modules_load(const char *list_path);
/* Loads the modules modules_load opened (works after a switch_root: they are open files). */
void modules_load_late(void);

#endif
