#!/bin/sh
# Atomic replace. The first livepatch (first.patch: devinfo_show and
# filesystems_proc_show) is at /modules/livepatch-atomic-replace-first.ko; the
# module under test (fix.patch, cumulative: devinfo_show only) replaces it.
#   run 1 (nothing loaded yet): loads the first livepatch and records that its
#     changes showed; exits 1 (the second patch is not active).
#   run 2 (module under test loaded): holds iff the second patch's change shows,
#     the first's change to filesystems_proc_show is gone (a function the
#     replacing patch does not carry reverts to the original), the first
#     livepatch left /sys/kernel/livepatch, and its module can be removed.
#   run 3 (module under test unloaded): the original behaviour is back: exits 1.
FIRST=livepatch_atomic_replace_first
FIRST_KO=/modules/livepatch-atomic-replace-first.ko
STATE=/tmp/klpforge-atomic-replace.state
header=$(head -n 1 /proc/devices)
fstail=$(tail -n 1 /proc/filesystems)
echo "/proc/devices: $header"
echo "/proc/filesystems ends with: $fstail"
if [ ! -e "$STATE" ]; then
	if ! insmod "$FIRST_KO"; then
		echo "check: cannot load $FIRST_KO"
		echo first-not-loaded > "$STATE"
		exit 1
	fi
	i=0
	while [ "$(cat /sys/kernel/livepatch/$FIRST/transition 2>/dev/null)" != 0 ] && [ $i -lt 300 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	header=$(head -n 1 /proc/devices)
	fstail=$(tail -n 1 /proc/filesystems)
	echo "first livepatch loaded: /proc/devices: $header; /proc/filesystems ends with: $fstail"
	if [ "$header" = "Character devices (livepatch v1):" ] && [ "$fstail" = "# livepatch v1" ]; then
		echo first-ok > "$STATE"
	else
		echo first-not-visible > "$STATE"
	fi
	exit 1
fi
state=$(cat "$STATE")
echo "first run: $state"
[ "$state" = first-ok ] || exit 1
[ "$header" = "Character devices (livepatch v2):" ] || exit 1
[ "$fstail" != "# livepatch v1" ] || exit 1
# The replaced patch is freed asynchronously once the transition is over.
i=0
while [ -e /sys/kernel/livepatch/$FIRST ] && [ $i -lt 50 ]; do
	sleep 0.1
	i=$((i + 1))
done
if [ -e /sys/kernel/livepatch/$FIRST ]; then
	echo "/sys/kernel/livepatch/$FIRST still exists: enabled=$(cat /sys/kernel/livepatch/$FIRST/enabled)"
	exit 1
fi
if grep -q "^$FIRST " /proc/modules; then
	rmmod "$FIRST" || { echo "check: the replaced livepatch module cannot be removed"; exit 1; }
	echo "replaced livepatch module removed"
fi
exit 0
