#!/bin/sh
# pcspkr is loaded before the livepatch (first run); while the livepatch is
# loaded its pre-patch and post-patch callbacks have run for pcspkr, and its
# pre-unpatch callback has not run yet.
if ! grep -q '^pcspkr ' /proc/modules; then
  grep -q '^input_core ' /proc/modules || insmod /modules/drivers/input/input-core.ko || { echo 'check: insmod input-core failed'; exit 2; }
  insmod /modules/drivers/input/misc/pcspkr.ko || { echo 'check: insmod pcspkr failed'; exit 2; }
fi
msgs=$(dmesg | sed -n 's/.*klpforge-callbacks: //p')
echo "$msgs"
echo "$msgs" | grep -qx 'pre-patch pcspkr live' || exit 1
echo "$msgs" | grep -qx 'post-patch pcspkr live' || exit 1
! echo "$msgs" | grep -q '^pre-unpatch'
