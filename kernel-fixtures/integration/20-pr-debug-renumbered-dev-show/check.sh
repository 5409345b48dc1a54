#!/bin/sh
# The patched dev_show adds a line after MAJOR:MINOR in every device's dev file.
# /dev/console's device (5:1) is there on every machine, whatever its serial port.
cat /sys/class/tty/console/dev
grep -qx 'klpforge' /sys/class/tty/console/dev
