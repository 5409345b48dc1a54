#!/bin/sh
# The kpatch callbacks ran in order (pre-patch, then post-patch, printing to
# the kernel log), and the post-patch callback turned on the new line the
# patched uptime_proc_show prints.
cat /proc/uptime
msgs=$(dmesg | sed -n 's/.*klpforge: uptime: //p')
echo "$msgs"
first_two=$(echo "$msgs" | head -n 2 | tr '\n' ' ')
[ "$first_two" = "pre-patch callback post-patch callback " ] || exit 1
grep -qx 'livepatched' /proc/uptime
