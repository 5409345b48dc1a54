#!/bin/sh
# The patched show_stat (with its BUG_ON, which never fires) ends /proc/stat with a new line.
tail -n 2 /proc/stat
grep -qx 'klpforge 1' /proc/stat
