#!/bin/sh
# The out-of-tree module is loaded on the first run (before the livepatch) and stays.
grep -q klpforge_hello /proc/modules || insmod /modules/klpforge_hello.ko || { echo "check: cannot load klpforge_hello.ko"; exit 2; }
cat /proc/klpforge_hello
grep -q 'livepatched out-of-tree' /proc/klpforge_hello
