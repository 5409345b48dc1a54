#!/bin/sh
# The patched meminfo_proc_show keeps the highest Committed_AS in a shadow
# variable attached to vm_committed_as (klp_shadow_get_or_alloc) and shows it
# as a new line; the value persists from one read to the next.
kb() { echo "$1" | sed -n "s/^$2: *\([0-9][0-9]*\) kB\$/\1/p"; }
m1=$(cat /proc/meminfo)
m2=$(cat /proc/meminfo)
as1=$(kb "$m1" Committed_AS)
p1=$(kb "$m1" Committed_Peak)
p2=$(kb "$m2" Committed_Peak)
echo "Committed_AS: ${as1:-absent}; Committed_Peak: ${p1:-absent}, then ${p2:-absent} (kB)"
[ -n "$as1" ] && [ -n "$p1" ] && [ -n "$p2" ] || exit 1
[ "$p1" -ge "$as1" ] && [ "$p2" -ge "$p1" ]
