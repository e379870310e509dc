/* Device-driven kernel module loading from the initramfs's module list (format in modules.c). */
#ifndef HF_INIT_MODULES_H
#define HF_INIT_MODULES_H

/* The two groups of device drivers, which two threads may load at the same time. */
enum modules_group {
	MODULES_BLOCK, /* virtio block devices: what the root disk needs */
	MODULES_OTHER,
};

/* Reads the list at list_path and loads the transports (virtio_mmio; virtio_pci if there is a PCI
 * bus), after which every virtio device is known. Failures are reported, not fatal: whoever needs
 * the device decides. */
void modules_load_transports(const char *list_path);
/* Loads the drivers of one group for the devices this VM has; only opens those marked `late`.
 * Call after modules_load_transports; the two groups may be loaded concurrently. */
void modules_load_drivers(enum modules_group group);
/* One line on the kernel log: what was loaded, what failed, the virtio devices seen. Call once
 * both groups are done. */
void modules_report(void);
/* Loads the modules marked `late` (works after a switch_root: they are open files). */
void modules_load_late(void);

#endif
