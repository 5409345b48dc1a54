#!/bin/sh
# The patched read_zero (clear_user: an __ex_table entry and alternatives whose
# replacements call clear_user_*) returns at most 64 KiB per read(): busybox dd
# reads a 1 MiB block once and gets a short record. Small reads stay whole.
big=$(dd if=/dev/zero bs=1048576 count=1 2>/dev/null | wc -c)
small=$(dd if=/dev/zero bs=4096 count=3 2>/dev/null | wc -c)
echo "1 MiB block: $big bytes; 3 x 4 KiB blocks: $small bytes"
[ "$small" -eq 12288 ] || exit 1
[ "$big" -eq 65536 ]
