#!/bin/sh
# The patched timer_list_show (which calls the file's static print_cpu, a name
# vmlinux has twice) prints the new header version; per-CPU data still follows.
v=$(head -n 1 /proc/timer_list)
echo "$v"
[ "$v" = "Timer List Version: v0.10" ] || exit 1
# print_cpu, reached through the klp relocation, still prints each CPU.
grep -q '^cpu: 0$' /proc/timer_list
