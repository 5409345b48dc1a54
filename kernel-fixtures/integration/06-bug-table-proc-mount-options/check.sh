#!/bin/sh
# The patched proc_show_options (it inlines hidepid2str, whose WARN_ONCE is a
# __bug_table entry and uses the kernel's own __already_done static) always
# shows hidepid= in /proc/mounts; the warning is never triggered.
grep '^proc /proc ' /proc/mounts
grep -q '^proc /proc proc [^ ]*,hidepid=off ' /proc/mounts
