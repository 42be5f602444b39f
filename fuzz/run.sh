#!/usr/bin/env bash
# Runs fuzz targets for SECONDS each (default 60; CI uses a short run, by hand use 600+):
#   bash fuzz/run.sh [SECONDS] [TARGET...]     (no TARGET: every target)
# cargo fuzz needs nightly flags; RUSTC_BOOTSTRAP lets the machine's stable toolchain accept them.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
shift || true
targets=("$@")
((${#targets[@]})) || mapfile -t targets < <(cargo fuzz list)
# Each target is built before it runs, so one that no longer compiles fails this script (the
# runs below filter their output and go on past errors).
for target in "${targets[@]}"; do
  cargo fuzz build -O "$target"
  # The working corpus grows (it is not committed); it starts from the seeds in fuzz/seeds.
  mkdir -p "fuzz/corpus/$target"
  cp -n fuzz/seeds/"$target"/* "fuzz/corpus/$target/" 2>/dev/null || true
  echo "==> fuzzing $target for ${SECONDS_EACH}s"
  cargo fuzz run -O "$target" "fuzz/corpus/$target" -- -max_total_time="$SECONDS_EACH" -max_len=8192 2>&1 | grep -E "^(#[0-9]+ *DONE|Done|==|SUMMARY|thread|panicked)" || true
  # A crash leaves an artifact and a non-zero exit above; fail loudly if one exists.
  if compgen -G "fuzz/artifacts/$target/crash-*" >/dev/null; then
    echo "crash found in $target: fuzz/artifacts/$target" >&2
    exit 1
  fi
  # In CI each instrumented binary (about 140 MB, most of it line tables) is deleted once it
  # has run, so that the disk holds one at a time: thirteen at once ran a CI machine out of
  # disk (`issues ci`, 2026-12-04). By hand they stay, for reruns and for reproducing a crash.
  if [[ ${CI:-} == true ]]; then
    rm -f "fuzz/target/$TRIPLE/release/$target" "fuzz/target/$TRIPLE/release/deps/$target"-*
  fi
done
