#!/bin/sh
# The patched loadavg_proc_show counts its reads in a new static local (data
# of the module): two reads in a row show consecutive counts.
a=$(cat /proc/loadavg)
b=$(cat /proc/loadavg)
echo "$a"
echo "$b"
case "$a" in *' reads='[0-9]*) ;; *) exit 1 ;; esac
case "$b" in *' reads='[0-9]*) ;; *) exit 1 ;; esac
n1=${a##* reads=}
n2=${b##* reads=}
[ "$n1" -ge 1 ] && [ "$n2" -eq $((n1 + 1)) ]
