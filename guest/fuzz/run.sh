#!/bin/sh
# Builds the protocol fuzzer (clang libFuzzer + ASan/UBSan) and runs it for SECONDS (default 30).
# Exits non-zero if it finds a crash; the reproducer is left in guest/build/fuzz-artifacts/.
# Usage: guest/fuzz/run.sh [SECONDS]
set -eu
seconds=${1:-30}
here=$(cd "$(dirname "$0")" && pwd)
guest=$(dirname "$here")
build="$guest/build"

make -s -C "$guest" fuzz

corpus="$build/fuzz-corpus"
artifacts="$build/fuzz-artifacts"
mkdir -p "$corpus" "$artifacts"
# Seeds: a HELLO, a PING, an EXEC with ARGs and an ENV, a detached EXEC, a READ with OFFSET (first byte:
# read size).
seed() { printf "$2" > "$corpus/seed-$1"; }
seed hello '\007\011\000\000\000\001\000\000\000\000\000\000\000\001\004\000\000\000\001\000\000\000'
seed ping '\377\003\000\000\000\002\000\000\000\007\000\000\000abc'
seed exec '\003\034\000\000\000\020\000\000\000\001\000\000\000\003\002\000\000\000sh\003\002\000\000\000-c\004\003\000\000\000A=B\010\001\000\000\000\001'
# A detached EXEC: ARG true, FLAGS 1, LOG_PATH /l.
seed detached '\005\031\000\000\000\020\000\000\000\001\000\000\000\003\004\000\000\000true\017\004\000\000\000\001\000\000\000\032\002\000\000\000/l'
# An EXEC with a PTY and flow control: ARG sh, FLAGS PTY|FLOW, ROWS 24, COLS 80, WINDOW 4096; a RESIZE.
seed pty '\003\053\000\000\000\020\000\000\000\001\000\000\000\003\002\000\000\000sh\017\004\000\000\000\006\000\000\000\050\004\000\000\000\030\000\000\000\051\004\000\000\000\120\000\000\000\052\004\000\000\000\000\020\000\000'
seed resize '\003\022\000\000\000\027\000\000\000\001\000\000\000\050\004\000\000\000\062\000\000\000\051\004\000\000\000\204\000\000\000'
# The kernel command line network parameters (netcfg.h), for the network parser.
seed netcfg 'quiet hf.ip=10.0.0.2/24 hf.gw=10.0.0.1 hf.mtu=1400 hf.dns=1.1.1.1,8.8.8.8 hf.mac=52:54:00:ab:cd:01 -- x'
# An IDENTITY: TIME_NS, 16 bytes of ENTROPY, HOSTNAME clone-1.
seed identity '\000\056\000\000\000\101\000\000\000\003\000\000\000\033\010\000\000\000\000\000\000\000\000\000\000\020\034\020\000\000\000abcdefghijklmnop\035\007\000\000\000clone-1'
# A READDIR with FLAGS NOFOLLOW, a RENAME with NEW_PATH and FLAGS NOREPLACE.
seed readdir '\013\022\000\000\000\064\000\000\000\002\000\000\000\015\004\000\000\000/etc\017\004\000\000\000\001\000\000\000'
seed rename '\013\031\000\000\000\066\000\000\000\002\000\000\000\015\002\000\000\000/a\036\004\000\000\000/b/c\017\004\000\000\000\001\000\000\000'
# A SYMLINK: PATH /l, TARGET ../t (tag 32).
seed symlink '\013\020\000\000\000\067\000\000\000\002\000\000\000\015\002\000\000\000/l\040\004\000\000\000../t'
seed read '\013\026\000\000\000\042\000\000\000\002\000\000\000\015\004\000\000\000/etc\021\010\000\000\000\005\000\000\000\000\000\000\000'

ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	"$build/fuzz-proto" -max_total_time="$seconds" -max_len=16384 -timeout=10 -error_exitcode=77 \
	-artifact_prefix="$artifacts/" -print_final_stats=1 "$corpus" 2>"$build/fuzz.log" || {
	status=$?
	tail -n 40 "$build/fuzz.log" >&2
	echo "fuzz: FAILED (exit $status); reproducers in $artifacts" >&2
	exit "$status"
}
grep -E '^(stat::number_of_executed_units|Done)' "$build/fuzz.log" || true
echo "fuzz: no crash in ${seconds}s"
