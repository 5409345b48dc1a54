#!/bin/sh
# /proc/cmdline ends with the word the patched cmdline_proc_show appends.
cat /proc/cmdline
grep -q ' klpforge$' /proc/cmdline
