#!/usr/bin/env bash
# The README's test command. Sets the machine up first (idempotent), then: typecheck, lint, unit
# tests, guest agent black-box tests + bounded fuzzing, the VMM driver conformance suite, and the
# real-VM integration, API, SDK and CLI tests.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh --no-start

echo; echo "==> typecheck and lint"
npx tsc -p tsconfig.json --noEmit
npm run lint

# VM-booting suites run one file at a time: a TCG boot costs ~0.55 CPU-s on a 2-core machine.
shopt -s nullglob
files=(test/unit/*.test.ts test/guest/*.test.ts test/vmm/*.test.ts test/integration/*.test.ts test/images/*.test.ts test/api/*.test.ts test/sdk/*.test.ts test/cli/*.test.ts test/network/*.test.ts)
echo; echo "==> tests (${#files[@]} files)"
exec node --import tsx --test --test-concurrency=1 "${files[@]}"
