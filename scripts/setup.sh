#!/usr/bin/env bash
# Idempotent host setup: Debian packages, npm dependencies, the guest agent/init build, and the
# guest assets (kernel, initramfs, base root disk). Then starts the server unless --no-start.
# Every step skips what is already up to date, so re-running costs a few seconds.
# --firecracker also installs the pinned Firecracker release (firecracker and jailer, SHA-256
# checked) into /usr/local/bin (docs/firecracker.md); a host that cannot download is told so and the
# rest of setup goes on.
set -euo pipefail
cd "$(dirname "$0")/.."

START=1
FIRECRACKER=0
for arg in "$@"; do
  case "$arg" in
    --no-start) START=0 ;;
    --firecracker) FIRECRACKER=1 ;;
    *) echo "setup: unknown option $arg" >&2; exit 2 ;;
  esac
done

step() { printf '\n==> %s\n' "$*"; }

# Host packages. Keep this list and docs/ARCHITECTURE.md in sync.
PACKAGES=(
  qemu-system-x86 qemu-utils      # VMM (microvm machine) and qemu-img for disk overlays
  musl-tools make                 # static guest agent and initramfs init
  kmod                            # depmod for the unpacked guest kernel's modules.dep
  busybox-static                  # userland of the default root disk
  e2fsprogs                       # mkfs.ext4 -d: root disks without loop mounts
  cpio lz4                        # initramfs inspection; vmlinux extraction from the bzImage
  iproute2 nftables procps        # networking (ip, nft, sysctl)
  skopeo umoci                    # OCI images: pull, unpack
  docker-registry apache2-utils   # tests: a real registry on loopback, htpasswd auth
  debootstrap tar                 # tests: a Debian-based test image
  clang llvm libclang-rt-14-dev   # libFuzzer (+ASan/UBSan) target for the agent's frame parser
  util-linux                      # unshare: the agent's PID 1 tests run in namespaces
  strace                          # tests: WRITE with FSYNC syncs before the rename (guest/nonblock)
  tmux                            # tests: the interactive shell driven like a terminal (test/cli/shell.test.ts)
  ca-certificates
  openssl                         # the per-VM URL proxy's local CA and wildcard certificate
  curl                            # bench:proxy's download client
)
step "host packages"
missing=()
for p in "${PACKAGES[@]}"; do
  [[ "$p" == \#* ]] && continue
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "all ${#PACKAGES[@]} packages present"
fi

step "npm dependencies"
if [[ ! -d node_modules ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund
else
  echo "node_modules up to date"
fi

step "library build (dist/, what \`import { Machine } from \"hyperfleet\"\` loads)"
npm run --silent build

step "the hyperfleet command (a symlink on the PATH)"
bash scripts/link-cli.sh || echo "setup: hyperfleet is not on the PATH; run bin/hyperfleet.js" >&2

step "guest agent and init (musl, static)"
make -C guest --no-print-directory

step "guest assets (kernel, initramfs, base root disk)"
node --import tsx scripts/setup-assets.ts

if ((FIRECRACKER)); then
  step "Firecracker release (firecracker + jailer, pinned and checksum-verified)"
  if ! node --import tsx scripts/install-firecracker.ts; then
    echo "setup: Firecracker was not installed (reason above); everything else is set up, and QEMU VMs work without it"
  fi
fi

if ((START)); then
  step "starting the server (Ctrl-C to stop)"
  exec npm start
fi
