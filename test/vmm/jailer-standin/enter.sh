#!/bin/sh
# Runs in a private mount namespace (unshare --mount): makes the jail able to run node (the
# Firecracker stand-in) by read-only bind mounts of the host's system, /work and this checkout
# (wherever it was cloned: the stand-in runs from it), then pivots into
# it (as the real jailer does; a chroot would also keep the stand-in's guest from creating its user
# namespace) and execs Firecracker there as the VM's uid. The mounts live only in this namespace: when the
# process ends they go with it, and the host never sees them (removeJail only ever finds empty dirs).
set -eu
R=$1 U=$2 G=$3
shift 3
REPO=$(cd "$(dirname "$0")/../../.." && pwd -P)
# The jail root must be a mount point for pivot_root; the binds below go on top of it.
mount --bind "$R" "$R"
for d in /usr /bin /sbin /lib /lib64 /etc /work "$REPO"; do
  [ -e "$d" ] || continue
  case "$d" in /work/*) continue ;; esac # inside /work, bound already
  if [ -L "$d" ]; then
    ln -sfn "$(readlink "$d")" "$R$d"
  else
    mkdir -p "$R$d"
    mount --bind "$d" "$R$d"
    mount -o remount,bind,ro "$R$d"
  fi
done
mkdir -p "$R/dev" "$R/proc" "$R/tmp" "$R/var/tmp"
mount --rbind /dev "$R/dev"
mount -t proc proc "$R/proc"
chmod 1777 "$R/tmp" "$R/var/tmp"
cd "$R"
mkdir -p .old-root
pivot_root . .old-root
cd /
umount -l /.old-root
rmdir /.old-root
exec setpriv --reuid="$U" --regid="$G" --clear-groups -- "$@"
