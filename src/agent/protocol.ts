/**
 * Constants of the guest agent protocol. The normative description is docs/agent-protocol.md;
 * guest/agent/proto.h mirrors these numbers for the C side.
 */
export const PROTOCOL_VERSION = 1;
export const HEADER_SIZE = 12;
export const MAX_PAYLOAD = 1024 * 1024;
/** Bytes per DATA/STDIN frame the host sends: large enough to amortise framing, small enough to interleave. */
export const DATA_CHUNK = 256 * 1024;
export const SERIAL_PORT_NAME = "hf.agent";

export const FLAG_END = 0x01;

export const MsgType = {
  HELLO: 0x01,
  PING: 0x02,
  PONG: 0x03,
  READY: 0x04,
  /** host→guest, empty: end operation `id` early (EXEC: SIGKILL, EXIT follows; READ/WRITE: ERROR ECANCELED). */
  CANCEL: 0x05,
  EXEC: 0x10,
  EXEC_STARTED: 0x11,
  STDIN: 0x12,
  SIGNAL: 0x13,
  STDOUT: 0x14,
  STDERR: 0x15,
  EXIT: 0x16,
  /** host→guest: ROWS, COLS: TIOCSWINSZ on an exec's PTY (its foreground group gets SIGWINCH). */
  RESIZE: 0x17,
  /** host→guest: SIZE more bytes of output the host takes from an exec started with FLAGS FLOW. */
  CREDIT: 0x18,
  WRITE: 0x20,
  DATA: 0x21,
  READ: 0x22,
  STAT: 0x30,
  STAT_RESULT: 0x31,
  DELETE: 0x32,
  MKDIR: 0x33,
  /** host→guest: PATH, FLAGS? (bit 0 NOFOLLOW); answered by DIRENTS frames, the last with END. */
  READDIR: 0x34,
  /** guest→host: ENTRY fields (lstat of each entry, symlinks with their target). */
  DIRENTS: 0x35,
  /** host→guest: PATH, NEW_PATH, FLAGS? (bit 0 NOREPLACE); answered OK. */
  RENAME: 0x36,
  /** host→guest: PATH (the link), TARGET; answered OK. */
  SYMLINK: 0x37,
  SHUTDOWN: 0x40,
  /** host→guest: TIME_NS?, ENTROPY?, HOSTNAME?; answered OK or ERROR (docs/agent-protocol.md, "identity"). */
  IDENTITY: 0x41,
  /** host→guest: USER?, ENV* (`NAME=value`); /run/secrets replaced, answered OK (docs/agent-protocol.md, "secrets"). */
  SECRETS: 0x43,
  /** host→guest: PATH (the target, created), FSTYPE, SOURCE or SERIAL, FLAGS? (bit 0 RDONLY), USER? (owner of a fresh filesystem's root); answered OK or ERROR. */
  MOUNT: 0x42,
  OK: 0x7e,
  ERROR: 0x7f,
} as const;
export type MsgType = (typeof MsgType)[keyof typeof MsgType];

export const Tag = {
  VERSION: 1,
  AGENT_VERSION: 2,
  ARG: 3,
  ENV: 4,
  CWD: 5,
  USER: 6,
  TIMEOUT_MS: 7,
  STDIN: 8,
  PID: 9,
  EXIT_CODE: 10,
  SIGNAL: 11,
  TIMED_OUT: 12,
  PATH: 13,
  MODE: 14,
  FLAGS: 15,
  SIZE: 16,
  OFFSET: 17,
  LENGTH: 18,
  UID: 19,
  GID: 20,
  MTIME_NS: 21,
  ERRNO: 22,
  MESSAGE: 23,
  DURATION_US: 24,
  /** HELLO: random bytes from the host, echoed in the reply so it can be found after a reconnect. */
  NONCE: 25,
  /** EXEC with FLAGS DETACHED: the file its stdout and stderr are appended to (default DEFAULT_LOG_PATH). */
  LOG_PATH: 26,
  /** IDENTITY: the guest's wall clock, ns since the epoch (i64). */
  TIME_NS: 27,
  /** IDENTITY: bytes mixed into the guest kernel's entropy pool (credited), then the CRNG is reseeded. */
  ENTROPY: 28,
  /** IDENTITY: the guest's new hostname (also /etc/hostname and /etc/hosts). */
  HOSTNAME: 29,
  /** RENAME: the new name. */
  NEW_PATH: 30,
  /** DIRENTS: one entry, `u32 mode | u32 uid | u32 gid | u64 size | i64 mtime_ns | u16 name_len | name | symlink target`. */
  ENTRY: 31,
  /** SYMLINK: what the link points to, stored as given. */
  TARGET: 32,
  /** MOUNT: what to mount, as mount(2)'s source (a device path, or a name such as `tmpfs`). */
  SOURCE: 33,
  /** MOUNT: the filesystem type (`ext4`, `tmpfs`); at most 31 bytes. */
  FSTYPE: 34,
  /** MOUNT: instead of SOURCE, the virtio-blk disk whose serial this is (/sys/block/<dev>/serial); at most 20 bytes. */
  SERIAL: 35,
  /** EXEC with FLAGS PTY, RESIZE: the terminal's rows (u32 1..65535; default 24). */
  ROWS: 40,
  /** EXEC with FLAGS PTY, RESIZE: the terminal's columns (u32 1..65535; default 80). */
  COLS: 41,
  /** EXEC with FLAGS FLOW: output bytes the guest may send before the first CREDIT (u32 >= 1). */
  WINDOW: 42,
} as const;
export type Tag = (typeof Tag)[keyof typeof Tag];

/** WRITE FLAGS. FSYNC: the data and the rename are on disk before the OK. */
export const WriteFlags = { MKDIRS: 1, APPEND: 2, FSYNC: 4 } as const;
export const DeleteFlags = { RECURSIVE: 1 } as const;
export const MkdirFlags = { PARENTS: 1 } as const;
export const ShutdownFlags = { REBOOT: 1 } as const;
/** READDIR FLAGS. NOFOLLOW: PATH itself must not be a symlink (ELOOP). */
export const ReaddirFlags = { NOFOLLOW: 1 } as const;
/** RENAME FLAGS. NOREPLACE: an existing NEW_PATH is EEXIST instead of being replaced. */
export const RenameFlags = { NOREPLACE: 1 } as const;
/** MOUNT FLAGS. RDONLY: a read-only mount (writes fail with EROFS). */
export const MountFlags = { RDONLY: 1 } as const;
/** MOUNT field limits: FSTYPE up to 31 bytes, SERIAL up to 20 (virtio-blk's serial size). */
export const MountLimits = { FSTYPE_MAX: 31, SERIAL_MAX: 20 } as const;
/** Fixed part of an ENTRY field before the name. */
export const ENTRY_HEADER = 30;
/** EXEC FLAGS. DETACHED: the machine's main process, not tied to the connection (docs/agent-protocol.md, "detached exec"). */
export const ExecFlags = {
  DETACHED: 1,
  /** A new PTY is the child's stdin, stdout and stderr and its controlling terminal; no STDERR frames. */
  PTY: 2,
  /** Per-exec flow control: at most WINDOW + CREDITs bytes of output (docs/agent-protocol.md, "flow control"). */
  FLOW: 4,
} as const;
/** Log of a detached EXEC without LOG_PATH. Its state is in `<log>.status`, the previous part after rotation in `<log>.1`. */
export const DEFAULT_LOG_PATH = "/var/log/hyperfleet/main.log";
/** IDENTITY field limits: ENTROPY 16..512 bytes, HOSTNAME 1..64 characters of [A-Za-z0-9-_.]. */
export const IdentityLimits = { ENTROPY_MIN: 16, ENTROPY_MAX: 512, HOSTNAME_MAX: 64 } as const;
