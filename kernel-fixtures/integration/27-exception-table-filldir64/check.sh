#!/bin/sh
# The patched filldir64 (its unsafe_put_user() stores into the user's buffer:
# __ex_table entries on every machine) skips a directory entry named
# klpforge-hidden: ls lists its neighbour but not it, and stat still finds it.
mkdir -p /klp-readdir
touch /klp-readdir/klpforge-hidden /klp-readdir/shown
listed=$(ls /klp-readdir | tr '\n' ' ')
echo "ls /klp-readdir: $listed"
[ -e /klp-readdir/klpforge-hidden ] || exit 1
ls /klp-readdir | grep -qx shown || exit 1
! ls /klp-readdir | grep -qx klpforge-hidden
