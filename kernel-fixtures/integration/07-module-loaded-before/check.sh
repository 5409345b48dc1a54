#!/bin/sh
# binfmt_misc is loaded by the first run (before the livepatch) and stays
# loaded: the livepatch must patch the module already in memory.
B=/proc/sys/fs/binfmt_misc
if ! grep -q '^binfmt_misc ' /proc/modules; then
	insmod /modules/fs/binfmt_misc.ko || { echo "check: cannot load /modules/fs/binfmt_misc.ko"; exit 2; }
fi
grep -q " $B binfmt_misc " /proc/mounts || mount -t binfmt_misc binfmt_misc "$B" || { echo "check: cannot mount binfmt_misc"; exit 2; }
s=$(cat "$B/status")
echo "status: $s"
[ "$s" = "enabled (livepatched)" ]
