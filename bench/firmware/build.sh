#!/usr/bin/env bash
# Builds the two versions of the Cortex-M benchmark firmware: OUT/firmware-1/fw.{elf,bin} and
# OUT/firmware-2/fw.{elf,bin}. Version 2 inserts a function near the start of the program, so
# all later code (the application and the newlib code linked after it) moves.
# Needs the Debian packages gcc-arm-none-eabi and libnewlib-arm-none-eabi.
set -euo pipefail
out="${1:?usage: build.sh OUT_DIR}"
src="$(cd "$(dirname "$0")" && pwd)"
for v in 1 2; do
  d="$out/firmware-$v"
  mkdir -p "$d"
  arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb -mfloat-abi=soft -O2 -g0 \
    -DFW_VERSION="$v" --specs=nano.specs --specs=nosys.specs -nostartfiles \
    -T "$src/link.ld" -Wl,--gc-sections -Wl,-u,_printf_float -o "$d/fw.elf" "$src/fw.c" -lm
  arm-none-eabi-strip --strip-debug "$d/fw.elf"
  arm-none-eabi-objcopy -O binary "$d/fw.elf" "$d/fw.bin"
done
