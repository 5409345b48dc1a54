#!/bin/sh
# newuname, rewritten with KPATCH_SYSCALL_DEFINE1, reports a changed release;
# the kernel's own record (/proc/sys/kernel/osrelease) is unchanged.
r=$(uname -r)
o=$(cat /proc/sys/kernel/osrelease)
echo "uname -r: $r; osrelease: $o"
[ "$r" = "$o-livepatched" ]
