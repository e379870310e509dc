/**
 * Just enough ELF64 reading to check our binaries: is it an x86-64 ELF, is it static (no program
 * interpreter, so it runs in an initramfs or a libc-less root disk), and does a kernel carry the
 * PVH entry note that lets QEMU and Firecracker boot it directly.
 */
const PT_INTERP = 3;
const PT_NOTE = 4;
const EM_X86_64 = 62;
/** XEN_ELFNOTE_PHYS32_ENTRY, owner "Xen": the 32-bit PVH entry point. */
const PVH_NOTE_TYPE = 18;

/** What inspectElf found. */
export interface ElfInfo {
  /** 64-bit little-endian x86-64. */
  x86_64: boolean;
  /** ET_EXEC / ET_DYN etc. */
  type: number;
  /** No PT_INTERP: runs without a dynamic loader. */
  isStatic: boolean;
  /** Has the Xen PHYS32_ENTRY note (PVH boot). */
  hasPvhNote: boolean;
}

/** Returns null if the bytes are not an ELF64 little-endian file. Never throws on bad input. */
export function inspectElf(buf: Uint8Array): ElfInfo | null {
  if (buf.length < 64 || buf[0] !== 0x7f || buf[1] !== 0x45 || buf[2] !== 0x4c || buf[3] !== 0x46) return null;
  if (buf[4] !== 2 || buf[5] !== 1) return null; // ELFCLASS64, little endian
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const phoff = Number(v.getBigUint64(0x20, true));
  const phentsize = v.getUint16(0x36, true);
  const phnum = v.getUint16(0x38, true);
  const info: ElfInfo = {
    x86_64: v.getUint16(0x12, true) === EM_X86_64,
    type: v.getUint16(0x10, true),
    isStatic: true,
    hasPvhNote: false,
  };
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (ph + 56 > buf.length) return null;
    const ptype = v.getUint32(ph, true);
    if (ptype === PT_INTERP) info.isStatic = false;
    if (ptype === PT_NOTE) {
      const off = Number(v.getBigUint64(ph + 8, true));
      const size = Number(v.getBigUint64(ph + 32, true));
      if (off + size <= buf.length && hasNote(v, off, off + size, "Xen", PVH_NOTE_TYPE)) info.hasPvhNote = true;
    }
  }
  return info;
}

function hasNote(v: DataView, start: number, end: number, owner: string, type: number): boolean {
  const align4 = (n: number): number => (n + 3) & ~3;
  for (let p = start; p + 12 <= end; ) {
    const namesz = v.getUint32(p, true);
    const descsz = v.getUint32(p + 4, true);
    const ntype = v.getUint32(p + 8, true);
    const name = Buffer.from(v.buffer, v.byteOffset + p + 12, Math.max(0, Math.min(namesz, end - p - 12)))
      .toString("latin1")
      .replace(/\0+$/, "");
    if (name === owner && ntype === type) return true;
    p += 12 + align4(namesz) + align4(descsz);
  }
  return false;
}
