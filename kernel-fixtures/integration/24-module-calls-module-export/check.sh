#!/bin/sh
# pcspkr is loaded in every run but the first, so its probe runs under
# whatever is loaded then: while the livepatch is, the device gets the new
# version number (and the click sound, through input-core's export). It is
# removed again at once: the device the patched probe made holds strings of
# the livepatch module, valid only while that module is loaded.
grep -q '^input_core ' /proc/modules || insmod /modules/drivers/input/input-core.ko || { echo 'check: insmod input-core failed'; exit 2; }
if [ ! -e /tmp/pcspkr-first-run-done ]; then touch /tmp/pcspkr-first-run-done; echo 'first run: pcspkr not loaded yet'; exit 1; fi
insmod /modules/drivers/input/misc/pcspkr.ko || { echo 'check: insmod pcspkr failed'; exit 2; }
version=
for d in /sys/class/input/input*; do
  [ "$(cat "$d/name" 2>/dev/null)" = 'PC Speaker' ] && version=$(cat "$d/id/version")
done
echo "PC Speaker: version $version"
rmmod pcspkr || { echo 'check: rmmod pcspkr failed'; exit 2; }
[ "$version" = '0142' ]
