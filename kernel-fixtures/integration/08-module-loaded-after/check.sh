#!/bin/sh
# binfmt_misc is loaded afresh by every run and unloaded at its end, so in the
# second run it is loaded after the livepatch: the livepatch core must patch it
# as it comes (and let it go again at rmmod). The patched create_entry (inlined
# into bm_register_write) refuses a relative interpreter path; an absolute one
# is still registered as before.
B=/proc/sys/fs/binfmt_misc
unload() {
	for e in klpforge_rel klpforge_abs; do [ -e "$B/$e" ] && echo -1 > "$B/$e"; done
	grep -q " $B binfmt_misc " /proc/mounts && umount "$B"
	rmmod binfmt_misc
}
if grep -q '^binfmt_misc ' /proc/modules; then
	unload || { echo "check: cannot unload binfmt_misc"; exit 2; }
fi
insmod /modules/fs/binfmt_misc.ko || { echo "check: cannot load /modules/fs/binfmt_misc.ko"; exit 2; }
mount -t binfmt_misc binfmt_misc "$B" || { echo "check: cannot mount binfmt_misc"; rmmod binfmt_misc; exit 2; }
rc=0
if echo ':klpforge_abs:E::klpforge_abs::/bin/sh:' > "$B/register"; then
	sed -n 2p "$B/klpforge_abs"
else
	echo "an absolute interpreter was refused"
	rc=1
fi
if echo ':klpforge_rel:E::klpforge_rel::bin/sh:' > "$B/register" 2>/dev/null; then
	echo "a relative interpreter was accepted"
	rc=1
else
	echo "a relative interpreter was refused"
fi
unload || echo "check: cannot unload binfmt_misc"
exit $rc
