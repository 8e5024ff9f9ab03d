#!/bin/sh
echo "$(echo abc | tr a-c x-z) $(basename /a/b)"
cat <<EOF | grep x
$(uname -r) `hostname`
EOF
